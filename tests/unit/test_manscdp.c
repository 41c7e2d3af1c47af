/* test_manscdp.c — MANSCDP codec: builders, parser, charsets, device quirks, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libxml/parser.h>

#include "gb/codec/manscdp.h"

/* GB2312 bytes of the Chinese strings used below (checked with iconv -t GB2312). */
#define GB_YIHAO "\xd2\xbb\xba\xc5\xc9\xe3\xcf\xf1\xbb\xfa" /* 一号摄像机 */
#define GB_DAMENKOU "\xb4\xf3\xc3\xc5\xbf\xda"              /* 大门口 */
#define GB_YANFALOU "\xd1\xd0\xb7\xa2\xc2\xa5"              /* 研发楼 */
#define GB_HIKVISION "\xba\xa3\xbf\xb5\xcd\xfe\xca\xd3"     /* 海康威视 */

static int parse_cstr(const char *body, gb_manscdp_t *m) { return gb_manscdp_parse(body, strlen(body), NULL, m); }

static void test_keepalive_exact_and_back(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_keepalive(&b, GB_CHARSET_GB2312, 43, "34020000001320000001", NULL), 0);
    assert_string_equal(b.data, "<?xml version=\"1.0\" encoding=\"GB2312\"?>\n"
                                "<Notify>\n"
                                "<CmdType>Keepalive</CmdType>\n"
                                "<SN>43</SN>\n"
                                "<DeviceID>34020000001320000001</DeviceID>\n"
                                "<Status>OK</Status>\n"
                                "</Notify>\n");
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.kind, GB_MSG_NOTIFY);
    assert_int_equal(m.cmd, GB_CMD_KEEPALIVE);
    assert_string_equal(m.cmd_type, "Keepalive");
    assert_true(m.has_sn);
    assert_int_equal(m.sn, 43);
    assert_string_equal(m.device_id, "34020000001320000001");
    assert_string_equal(m.status, "OK");
    assert_int_equal(m.charset, GB_CHARSET_GB2312);
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

static void test_queries(void **state)
{
    (void)state;
    gb_cmd_t cmds[] = {GB_CMD_CATALOG, GB_CMD_DEVICE_INFO, GB_CMD_DEVICE_STATUS};
    for (size_t i = 0; i < 3; i++) {
        sbuf_t b;
        sbuf_init(&b);
        assert_int_equal(gb_manscdp_build_query(&b, GB_CHARSET_UTF8, cmds[i], 17 + (uint32_t)i, "34020000001320000001"),
                         0);
        assert_non_null(strstr(b.data, "encoding=\"UTF-8\""));
        gb_manscdp_t m;
        assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
        assert_int_equal(m.kind, GB_MSG_QUERY);
        assert_int_equal(m.cmd, cmds[i]);
        assert_int_equal(m.sn, 17 + i);
        assert_string_equal(m.device_id, "34020000001320000001");
        assert_int_equal(m.item_count, 0);
        assert_false(m.has_list);
        assert_int_equal(m.charset, GB_CHARSET_UTF8);
        gb_manscdp_free(&m);
        sbuf_free(&b);
    }
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_query(&b, GB_CHARSET_UTF8, GB_CMD_UNKNOWN, 1, "x"), GB_MANSCDP_EARG);
    assert_int_equal(b.len, 0);
    sbuf_free(&b);
}

static void fill_items(gb_catalog_item_t *it, size_t n)
{
    static const char *names[] = {"一号摄像机", "大门口", "研发楼", "Lobby <A&B>", "二号摄像机"};
    static char ids[5][24];
    for (size_t i = 0; i < n; i++) {
        gb_catalog_item_init(&it[i]);
        snprintf(ids[i], sizeof(ids[i]), "3402000000131000000%d", (int)(i + 1) % 10);
        it[i].device_id = ids[i];
        it[i].name = (char *)names[i % 5];
        it[i].manufacturer = "海康威视";
        it[i].model = "DS-2CD3T46";
        it[i].owner = "Owner";
        it[i].civil_code = "3402000000";
        it[i].block = "B1";
        it[i].address = "研发楼 3F";
        it[i].parental = 0;
        it[i].parent_id = "34020000002000000001";
        it[i].business_group_id = "34020000002150000001";
        it[i].safety_way = 0;
        it[i].register_way = 1;
        it[i].secrecy = 0;
        it[i].ip_address = "192.168.1.64";
        it[i].port = 5060 + (int)i;
        it[i].status = i % 2 ? GB_ONOFF_OFF : GB_ONOFF_ON;
        it[i].has_position = true;
        it[i].longitude = 117.283042 + (double)i;
        it[i].latitude = 31.86119;
    }
}

static void assert_item_equal(const gb_catalog_item_t *a, const gb_catalog_item_t *b)
{
    assert_string_equal(a->device_id, b->device_id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->manufacturer, b->manufacturer);
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->owner, b->owner);
    assert_string_equal(a->civil_code, b->civil_code);
    assert_string_equal(a->block, b->block);
    assert_string_equal(a->address, b->address);
    assert_string_equal(a->parent_id, b->parent_id);
    assert_string_equal(a->business_group_id, b->business_group_id);
    assert_string_equal(a->ip_address, b->ip_address);
    assert_int_equal(a->parental, b->parental);
    assert_int_equal(a->safety_way, b->safety_way);
    assert_int_equal(a->register_way, b->register_way);
    assert_int_equal(a->secrecy, b->secrecy);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->has_position, b->has_position);
    assert_true(a->longitude - b->longitude < 1e-6 && b->longitude - a->longitude < 1e-6);
    assert_true(a->latitude - b->latitude < 1e-6 && b->latitude - a->latitude < 1e-6);
    assert_int_equal(a->event, b->event);
}

static void catalog_round_trip(gb_charset_t cs)
{
    gb_catalog_item_t items[5];
    fill_items(items, 5);
    /* The lower platform splits 5 items over MESSAGEs; this is the second one. */
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, cs, 9, "34020000002000000001", items, 5, 2, 2), 0);
    if (cs != GB_CHARSET_UTF8) { /* GB18030 encodes these like GB2312 */
        assert_non_null(strstr(b.data, "<Name>" GB_YANFALOU "</Name>"));
        assert_non_null(strstr(b.data, "<Manufacturer>" GB_HIKVISION "</Manufacturer>"));
        assert_non_null(strstr(b.data, "&lt;A&amp;B&gt;"));
    } else {
        assert_non_null(strstr(b.data, "<Name>研发楼</Name>"));
    }
    assert_non_null(strstr(b.data, "<SumNum>5</SumNum>"));
    assert_non_null(strstr(b.data, "<DeviceList Num=\"2\">"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.charset, cs);
    assert_int_equal(m.kind, GB_MSG_RESPONSE);
    assert_int_equal(m.cmd, GB_CMD_CATALOG);
    assert_int_equal(m.sn, 9);
    assert_true(m.has_sum_num);
    assert_int_equal(m.sum_num, 5);
    assert_true(m.has_list);
    assert_int_equal(m.list_num, 2);
    assert_int_equal(m.item_count, 2);
    assert_item_equal(&m.items[0], &items[2]);
    assert_item_equal(&m.items[1], &items[3]);
    assert_string_equal(m.items[1].name, "Lobby <A&B>");
    gb_manscdp_free(&m);

    /* Building the parsed struct again gives the same body. */
    sbuf_t again;
    sbuf_init(&again);
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(gb_manscdp_build(&again, cs, &m), 0);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    gb_manscdp_free(&m);
    sbuf_free(&again);
    sbuf_free(&b);
}

static void test_catalog_round_trip_gb2312(void **state)
{
    (void)state;
    catalog_round_trip(GB_CHARSET_GB2312);
}

static void test_catalog_round_trip_utf8(void **state)
{
    (void)state;
    catalog_round_trip(GB_CHARSET_UTF8);
}

static void test_catalog_round_trip_gb18030(void **state)
{
    (void)state;
    catalog_round_trip(GB_CHARSET_GB18030);
}

static void test_catalog_slices(void **state)
{
    (void)state;
    gb_catalog_item_t items[5];
    fill_items(items, 5);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 1, "d", items, 5, 4, 2),
                     GB_MANSCDP_EARG);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 1, "d", items, 5, 6, 0),
                     GB_MANSCDP_EARG);
    assert_int_equal(b.len, 0);
    /* Walk the catalog in slices of 2 and reassemble as the upper platform does. */
    size_t got = 0;
    for (size_t from = 0; from < 5; from += 2) {
        size_t n = 5 - from < 2 ? 5 - from : 2;
        sbuf_clear(&b);
        assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 7, "d", items, 5, from, n), 0);
        gb_manscdp_t m;
        assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
        assert_int_equal(m.sum_num, 5);
        assert_int_equal(m.item_count, n);
        assert_int_equal(m.list_num, n);
        for (size_t i = 0; i < n; i++) assert_item_equal(&m.items[i], &items[from + i]);
        got += m.item_count;
        gb_manscdp_free(&m);
    }
    assert_int_equal(got, 5);
    /* An empty catalog still says SumNum 0 and an empty list. */
    sbuf_clear(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_UTF8, 8, "d", NULL, 0, 0, 0), 0);
    assert_non_null(strstr(b.data, "<SumNum>0</SumNum>\n<DeviceList Num=\"0\">\n</DeviceList>"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_true(m.has_sum_num);
    assert_int_equal(m.sum_num, 0);
    assert_true(m.has_list);
    assert_int_equal(m.item_count, 0);
    assert_null(m.items);
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

static void test_catalog_notify(void **state)
{
    (void)state;
    gb_catalog_item_t items[3];
    fill_items(items, 3);
    items[0].event = GB_EVENT_ADD;
    items[1].event = GB_EVENT_DEL;
    items[2].event = GB_EVENT_OFF;
    for (int cs = GB_CHARSET_GB2312; cs <= GB_CHARSET_UTF8; cs++) {
        sbuf_t b;
        sbuf_init(&b);
        assert_int_equal(gb_manscdp_build_catalog_notify(&b, (gb_charset_t)cs, 100, "34020000002000000001", items, 3),
                         0);
        assert_non_null(strstr(b.data, "<Event>ADD</Event>"));
        gb_manscdp_t m;
        assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
        assert_int_equal(m.kind, GB_MSG_NOTIFY);
        assert_int_equal(m.cmd, GB_CMD_CATALOG);
        assert_int_equal(m.sum_num, 3);
        assert_int_equal(m.item_count, 3);
        for (size_t i = 0; i < 3; i++) assert_item_equal(&m.items[i], &items[i]);
        assert_int_equal(m.items[1].event, GB_EVENT_DEL);
        gb_manscdp_free(&m);
        sbuf_free(&b);
    }
}

static void test_device_info_and_status(void **state)
{
    (void)state;
    gb_device_info_t info = {"一号摄像机", "海康威视", "DS-2CD3T46", "V5.5.0 build 170725", 4};
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_device_info_response(&b, GB_CHARSET_GB2312, 5, "34020000001320000001", "OK",
                                                           &info),
                     0);
    assert_non_null(strstr(b.data, "<DeviceName>" GB_YIHAO "</DeviceName>"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.kind, GB_MSG_RESPONSE);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_INFO);
    assert_string_equal(m.result, "OK");
    assert_string_equal(m.info.device_name, "一号摄像机");
    assert_string_equal(m.info.manufacturer, "海康威视");
    assert_string_equal(m.info.model, "DS-2CD3T46");
    assert_string_equal(m.info.firmware, "V5.5.0 build 170725");
    assert_int_equal(m.info.channel, 4);
    gb_manscdp_free(&m);

    gb_alarm_status_t alarms[2] = {{"34020000001340000001", "ONDUTY"}, {"34020000001340000002", "ALARM"}};
    gb_device_status_t st = {"ONLINE", "ON", "OFF", "2026-11-21T22:44:44", alarms, 2, true};
    sbuf_clear(&b);
    assert_int_equal(gb_manscdp_build_device_status_response(&b, GB_CHARSET_UTF8, 6, "34020000001320000001", "OK",
                                                             "OK", &st),
                     0);
    assert_non_null(strstr(b.data, "<Alarmstatus Num=\"2\">"));
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_STATUS);
    assert_string_equal(m.result, "OK");
    assert_string_equal(m.status, "OK");
    assert_string_equal(m.dstatus.online, "ONLINE");
    assert_string_equal(m.dstatus.encode, "ON");
    assert_string_equal(m.dstatus.record, "OFF");
    assert_string_equal(m.dstatus.device_time, "2026-11-21T22:44:44");
    assert_true(m.dstatus.has_alarm_list);
    assert_int_equal(m.dstatus.alarm_count, 2);
    assert_string_equal(m.dstatus.alarms[1].device_id, "34020000001340000002");
    assert_string_equal(m.dstatus.alarms[1].duty_status, "ALARM");
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

static void test_record_info(void **state)
{
    (void)state;
    gb_record_query_t q = {"2026-11-21T00:00:00", "2026-11-21T23:59:59", NULL, "大门口", "all", NULL, 0};
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_record_query(&b, GB_CHARSET_GB2312, 77, "34020000001310000001", &q), 0);
    assert_non_null(strstr(b.data, "<Address>" GB_DAMENKOU "</Address>"));
    assert_null(strstr(b.data, "FilePath"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.kind, GB_MSG_QUERY);
    assert_int_equal(m.cmd, GB_CMD_RECORD_INFO);
    assert_int_equal(m.sn, 77);
    assert_string_equal(m.record_query.start_time, "2026-11-21T00:00:00");
    assert_string_equal(m.record_query.end_time, "2026-11-21T23:59:59");
    assert_string_equal(m.record_query.address, "大门口");
    assert_string_equal(m.record_query.type, "all");
    assert_int_equal(m.record_query.secrecy, 0);
    assert_null(m.record_query.file_path);
    assert_null(m.record_query.recorder_id);
    gb_manscdp_free(&m);

    gb_record_item_t rec[3];
    for (int i = 0; i < 3; i++) {
        rec[i] = (gb_record_item_t){"34020000001310000001", "一号摄像机", "/rec/1.mp4", "研发楼", "2026-11-21T08:00:00",
                                    "2026-11-21T09:00:00", "time", NULL, 0, 1000000000LL * (i + 1)};
    }
    rec[2].file_size = -1;
    rec[2].recorder_id = "34020000001180000001";
    for (int cs = GB_CHARSET_GB2312; cs <= GB_CHARSET_UTF8; cs++) {
        sbuf_clear(&b);
        assert_int_equal(gb_manscdp_build_record_response(&b, (gb_charset_t)cs, 77, "34020000001310000001",
                                                          "一号摄像机", rec, 3, 1, 2),
                         0);
        assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
        assert_int_equal(m.kind, GB_MSG_RESPONSE);
        assert_int_equal(m.cmd, GB_CMD_RECORD_INFO);
        assert_string_equal(m.name, "一号摄像机");
        assert_int_equal(m.sum_num, 3);
        assert_int_equal(m.list_num, 2);
        assert_int_equal(m.record_count, 2);
        assert_int_equal(m.item_count, 0);
        assert_string_equal(m.records[0].name, "一号摄像机");
        assert_string_equal(m.records[0].address, "研发楼");
        assert_string_equal(m.records[0].file_path, "/rec/1.mp4");
        assert_string_equal(m.records[0].start_time, "2026-11-21T08:00:00");
        assert_string_equal(m.records[0].end_time, "2026-11-21T09:00:00");
        assert_string_equal(m.records[0].type, "time");
        assert_int_equal(m.records[0].secrecy, 0);
        assert_int_equal(m.records[0].file_size, 2000000000LL);
        assert_null(m.records[0].recorder_id);
        assert_int_equal(m.records[1].file_size, -1);
        assert_string_equal(m.records[1].recorder_id, "34020000001180000001");
        gb_manscdp_free(&m);
    }
    sbuf_free(&b);
}

static void test_device_control(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_ptz_control(&b, GB_CHARSET_GB2312, 11, "34020000001310000001",
                                                  "A50F01021F0000D6"),
                     0);
    assert_non_null(strstr(b.data, "<Control>\n<CmdType>DeviceControl</CmdType>"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.kind, GB_MSG_CONTROL);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_CONTROL);
    assert_string_equal(m.control.ptz_cmd, "A50F01021F0000D6");
    assert_null(m.control.tele_boot);
    gb_manscdp_free(&m);

    const char *body = "<?xml version=\"1.0\"?>\r\n<Control>\r\n<CmdType>DeviceControl</CmdType>\r\n<SN>12</SN>\r\n"
                       "<DeviceID>34020000001320000001</DeviceID>\r\n<TeleBoot>Boot</TeleBoot>\r\n"
                       "<RecordCmd>Record</RecordCmd>\r\n<GuardCmd>SetGuard</GuardCmd>\r\n"
                       "<AlarmCmd>ResetAlarm</AlarmCmd>\r\n</Control>\r\n";
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_string_equal(m.control.tele_boot, "Boot");
    assert_string_equal(m.control.record_cmd, "Record");
    assert_string_equal(m.control.guard_cmd, "SetGuard");
    assert_string_equal(m.control.alarm_cmd, "ResetAlarm");
    gb_manscdp_free(&m);

    sbuf_clear(&b);
    assert_int_equal(gb_manscdp_build_control_response(&b, GB_CHARSET_GB2312, 12, "34020000001320000001", "OK"), 0);
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.kind, GB_MSG_RESPONSE);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_CONTROL);
    assert_string_equal(m.result, "OK");
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

/* A Hikvision-style catalog response: GB2312 bytes, CRLF, tabs, blank lines,
 * spaces inside values, trailing NULs after the root. */
static void test_hikvision_style_catalog(void **state)
{
    (void)state;
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n"
        "<Response>\r\n"
        "<CmdType>Catalog</CmdType>\r\n"
        "<SN>17430</SN>\r\n"
        "<DeviceID>34020000001320000001</DeviceID>\r\n"
        "<SumNum>1</SumNum>\r\n"
        "<DeviceList Num=\"1\">\r\n"
        "<Item>\r\n"
        "<DeviceID>34020000001310000001</DeviceID>\r\n"
        "<Name>" GB_YIHAO "</Name>\r\n"
        "<Manufacturer>Hikvision</Manufacturer>\r\n"
        "<Model>IP Camera</Model>\r\n"
        "<Owner>Owner</Owner>\r\n"
        "<CivilCode>3402000000</CivilCode>\r\n"
        "<Address>" GB_DAMENKOU "</Address>\r\n"
        "<Parental>0</Parental>\r\n"
        "<ParentID>34020000001320000001</ParentID>\r\n"
        "<SafetyWay>0</SafetyWay>\r\n"
        "<RegisterWay>1</RegisterWay>\r\n"
        "<Secrecy>0</Secrecy>\r\n"
        "<Status>ON</Status>\r\n"
        "</Item>\r\n"
        "</DeviceList>\r\n"
        "</Response>\r\n\0\0";
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(body, sizeof(body) - 1, NULL, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GB2312);
    assert_int_equal(m.kind, GB_MSG_RESPONSE);
    assert_int_equal(m.cmd, GB_CMD_CATALOG);
    assert_int_equal(m.sn, 17430);
    assert_int_equal(m.sum_num, 1);
    assert_int_equal(m.item_count, 1);
    const gb_catalog_item_t *it = &m.items[0];
    assert_string_equal(it->device_id, "34020000001310000001");
    assert_string_equal(it->name, "一号摄像机");
    assert_string_equal(it->manufacturer, "Hikvision");
    assert_string_equal(it->address, "大门口");
    assert_string_equal(it->parent_id, "34020000001320000001");
    assert_int_equal(it->parental, 0);
    assert_int_equal(it->register_way, 1);
    assert_int_equal(it->safety_way, 0);
    assert_int_equal(it->secrecy, 0);
    assert_int_equal(it->status, GB_ONOFF_ON);
    assert_int_equal(it->port, -1);
    assert_null(it->ip_address);
    assert_false(it->has_position);
    gb_manscdp_free(&m);
}

/* Dahua-style: LF, indentation, declaration says GB2312 but the body is UTF-8
 * (the lie the spec warns about), lower-case status, odd whitespace in values. */
static void test_dahua_style_lying_declaration(void **state)
{
    (void)state;
    const char *body = "<?xml version=\"1.0\" encoding=\"GB2312\" standalone=\"yes\" ?>\n"
                       "<Response>\n"
                       "    <CmdType>Catalog</CmdType>\n"
                       "    <SN> 2 </SN>\n"
                       "    <DeviceID>34020000001180000001</DeviceID>\n"
                       "    <SumNum>2</SumNum>\n"
                       "    <DeviceList Num=\" 2 \">\n"
                       "        <Item>\n"
                       "            <DeviceID>34020000001310000001</DeviceID>\n"
                       "            <Name>\n\t研发楼 东门\n</Name>\n"
                       "            <Status>Online</Status>\n"
                       "            <Longitude>117.283042</Longitude>\n"
                       "            <Latitude>31.86119</Latitude>\n"
                       "            <Port>37777</Port>\n"
                       "        </Item>\n"
                       "        <Item>\n"
                       "            <DeviceID>34020000001310000002</DeviceID>\n"
                       "            <Name></Name>\n"
                       "            <Status>OFF</Status>\n"
                       "            <Longitude>abc</Longitude>\n"
                       "            <Port></Port>\n"
                       "        </Item>\n"
                       "    </DeviceList>\n"
                       "</Response>\n";
    gb_manscdp_t m;
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_UTF8);
    assert_int_equal(m.sn, 2);
    assert_int_equal(m.list_num, 2);
    assert_int_equal(m.item_count, 2);
    assert_string_equal(m.items[0].name, "研发楼 东门");
    assert_int_equal(m.items[0].status, GB_ONOFF_ON);
    assert_true(m.items[0].has_position);
    assert_true(m.items[0].longitude > 117.283041 && m.items[0].longitude < 117.283043);
    assert_int_equal(m.items[0].port, 37777);
    assert_string_equal(m.items[1].name, "");
    assert_int_equal(m.items[1].status, GB_ONOFF_OFF);
    assert_false(m.items[1].has_position);
    assert_int_equal(m.items[1].port, -1);
    gb_manscdp_free(&m);
}

static void test_charset_detection(void **state)
{
    (void)state;
    gb_manscdp_t m;
    /* No declaration, GB2312 bytes: not UTF-8, so GB18030. */
    const char *gb_nodecl = "<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>" GB_DAMENKOU
                            "</DeviceID><Status>OK</Status></Notify>";
    assert_int_equal(parse_cstr(gb_nodecl, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GB18030);
    assert_string_equal(m.device_id, "大门口");
    gb_manscdp_free(&m);
    /* No declaration, UTF-8 bytes. */
    assert_int_equal(parse_cstr("<Notify><CmdType>Keepalive</CmdType><DeviceID>大门口</DeviceID></Notify>", &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_UTF8);
    assert_string_equal(m.device_id, "大门口");
    assert_false(m.has_sn);
    gb_manscdp_free(&m);
    /* Declaration says UTF-8, body is GB2312: falls back to GB18030. */
    const char *lie = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Notify><CmdType>Keepalive</CmdType>"
                      "<DeviceID>" GB_YANFALOU "</DeviceID></Notify>";
    assert_int_equal(parse_cstr(lie, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GB18030);
    assert_string_equal(m.device_id, "研发楼");
    gb_manscdp_free(&m);
    /* GBK-only character (镕 = E9 46) under a GB2312 declaration: strict GB2312
     * and UTF-8 fail, GB18030 (a GBK superset) reads it. */
    const char *gbk = "<?xml version=\"1.0\" encoding=\"GB2312\"?><Notify><CmdType>Keepalive</CmdType>"
                      "<DeviceID>\xe9\x46</DeviceID></Notify>";
    assert_int_equal(parse_cstr(gbk, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GB18030);
    assert_string_equal(m.device_id, "镕");
    gb_manscdp_free(&m);
    /* Content-Type charset for a body without declaration. */
    const char *ct = "<Notify><CmdType>Keepalive</CmdType><DeviceID>\xe9\x46</DeviceID></Notify>";
    assert_int_equal(gb_manscdp_parse(ct, strlen(ct), "gbk", &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GBK);
    assert_string_equal(m.device_id, "镕");
    gb_manscdp_free(&m);
    assert_int_equal(gb_manscdp_parse(ct, strlen(ct), " \"GBK\"", &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GBK);
    gb_manscdp_free(&m);
    /* UTF-8 BOM and leading line breaks. */
    const char *bom = "\xEF\xBB\xBF\r\n<?xml version='1.0' encoding='gb2312'?><Notify><CmdType>Keepalive</CmdType>"
                      "<DeviceID>大门口</DeviceID></Notify>";
    assert_int_equal(parse_cstr(bom, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_UTF8);
    assert_string_equal(m.device_id, "大门口");
    gb_manscdp_free(&m);
    /* Unknown declared charset: ignored, UTF-8 used. */
    assert_int_equal(parse_cstr("<?xml version=\"1.0\" encoding=\"x-bogus\"?><Query><CmdType>Catalog</CmdType>"
                                "<SN>3</SN></Query>",
                                &m),
                     0);
    assert_int_equal(m.charset, GB_CHARSET_UTF8);
    assert_int_equal(m.cmd, GB_CMD_CATALOG);
    gb_manscdp_free(&m);
}

static void test_unencodable_characters(void **state)
{
    (void)state;
    /* 镕 is not in GB2312 and the emoji is in neither GB2312 nor GBK: both
     * become character references and come back intact. */
    gb_catalog_item_t it;
    gb_catalog_item_init(&it);
    it.device_id = "34020000001310000001";
    it.name = "镕 cam \xF0\x9F\x98\x80";
    it.address = "bad\x01" "ctl \xff end";
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 1, "d", &it, 1, 0, 1), 0);
    assert_non_null(strstr(b.data, "<Name>&#x9555; cam &#x1F600;</Name>"));
    gb_manscdp_t m;
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GB2312);
    assert_string_equal(m.items[0].name, "镕 cam \xF0\x9F\x98\x80");
    assert_string_equal(m.items[0].address, "bad ctl ? end");
    assert_int_equal(m.items[0].parental, -1);
    gb_manscdp_free(&m);
    sbuf_clear(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GBK, 1, "d", &it, 1, 0, 1), 0);
    assert_non_null(strstr(b.data, "<Name>\xe9\x46 cam &#x1F600;</Name>"));
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.charset, GB_CHARSET_GBK);
    assert_string_equal(m.items[0].name, "镕 cam \xF0\x9F\x98\x80");
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

static void test_unknown_cmd_and_case(void **state)
{
    (void)state;
    gb_manscdp_t m;
    const char *body = "<?xml version=\"1.0\"?><Notify><CmdType>Broadcast</CmdType><SN>5</SN>"
                       "<DeviceID>34020000001320000001</DeviceID><Longitude>1</Longitude></Notify>";
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.kind, GB_MSG_NOTIFY);
    assert_int_equal(m.cmd, GB_CMD_UNKNOWN);
    assert_string_equal(m.cmd_type, "Broadcast");
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build(&b, GB_CHARSET_UTF8, &m), 0);
    assert_non_null(strstr(b.data, "<CmdType>Broadcast</CmdType>"));
    gb_manscdp_free(&m);
    sbuf_free(&b);
    /* Element names in another case, duplicated fields (first wins), SN overflow. */
    body = "<query><cmdtype>catalog</cmdtype><sn>4294967296</sn><DeviceID>a</DeviceID><DeviceID>b</DeviceID></query>";
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.kind, GB_MSG_QUERY);
    assert_int_equal(m.cmd, GB_CMD_CATALOG);
    assert_false(m.has_sn);
    assert_string_equal(m.device_id, "a");
    gb_manscdp_free(&m);
}

static void test_recover_unescaped_ampersand(void **state)
{
    (void)state;
    gb_manscdp_t m;
    const char *body = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\n<Response><CmdType>DeviceInfo</CmdType>"
                       "<SN>3</SN><DeviceID>x</DeviceID><DeviceName>R&D " GB_YANFALOU "</DeviceName>"
                       "<Result>OK</Result></Response>";
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_INFO);
    assert_int_equal(m.charset, GB_CHARSET_GB2312);
    assert_string_equal(m.result, "OK");
    assert_non_null(m.info.device_name);
    assert_non_null(strstr(m.info.device_name, "研发楼"));
    gb_manscdp_free(&m);
}

static void test_refusals(void **state)
{
    (void)state;
    gb_manscdp_t m;
    const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                         "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
                         "<Notify><CmdType>Keepalive</CmdType><DeviceID>&lol2;</DeviceID></Notify>";
    assert_int_equal(parse_cstr(laughs, &m), GB_MANSCDP_EDTD);
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                      "<Notify><CmdType>Keepalive</CmdType><DeviceID>&x;</DeviceID></Notify>";
    assert_int_equal(parse_cstr(xxe, &m), GB_MANSCDP_EDTD);
    assert_null(m.device_id);
    assert_int_equal(parse_cstr("<Foo><CmdType>Keepalive</CmdType></Foo>", &m), GB_MANSCDP_EROOT);
    assert_int_equal(parse_cstr("<Notify><SN>1</SN></Notify>", &m), GB_MANSCDP_ECMD);
    assert_int_equal(parse_cstr("<Notify><CmdType> </CmdType></Notify>", &m), GB_MANSCDP_ECMD);
    assert_int_equal(parse_cstr("", &m), GB_MANSCDP_EXML);
    assert_int_equal(parse_cstr("   \r\n", &m), GB_MANSCDP_EXML);
    assert_int_equal(parse_cstr("not xml at all", &m), GB_MANSCDP_EXML);
    assert_int_equal(gb_manscdp_parse(NULL, 0, NULL, &m), GB_MANSCDP_EXML);
    assert_string_equal(gb_manscdp_strerror(GB_MANSCDP_EDTD), "DOCTYPE/entities refused");

    /* Too big. */
    size_t big = GB_MANSCDP_MAX_BODY + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, ' ', big);
    assert_int_equal(gb_manscdp_parse(buf, big, NULL, &m), GB_MANSCDP_ETOOBIG);
    free(buf);

    /* Too deep. */
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "<Notify><CmdType>Keepalive</CmdType>");
    for (int i = 0; i < 40; i++) sbuf_append_cstr(&b, "<a>");
    for (int i = 0; i < 40; i++) sbuf_append_cstr(&b, "</a>");
    sbuf_append_cstr(&b, "</Notify>");
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), GB_MANSCDP_ELIMIT);

    /* Too many items. */
    sbuf_clear(&b);
    sbuf_append_cstr(&b, "<Response><CmdType>Catalog</CmdType><DeviceList>");
    for (int i = 0; i < GB_MANSCDP_MAX_ITEMS + 1; i++) sbuf_append_cstr(&b, "<Item/>");
    sbuf_append_cstr(&b, "</DeviceList></Response>");
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), GB_MANSCDP_ELIMIT);
    assert_null(m.items);
    assert_int_equal(m.item_count, 0);
    /* Exactly the limit is fine. */
    sbuf_clear(&b);
    sbuf_append_cstr(&b, "<Response><CmdType>Catalog</CmdType><DeviceList>");
    for (int i = 0; i < GB_MANSCDP_MAX_ITEMS; i++) sbuf_append_cstr(&b, "<Item><DeviceID>1</DeviceID></Item>");
    sbuf_append_cstr(&b, "</DeviceList></Response>");
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &m), 0);
    assert_int_equal(m.item_count, GB_MANSCDP_MAX_ITEMS);
    assert_string_equal(m.items[GB_MANSCDP_MAX_ITEMS - 1].device_id, "1");
    gb_manscdp_free(&m);
    sbuf_free(&b);

    /* The builder wants a root kind and a CmdType. */
    gb_manscdp_init(&m);
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build(&b, GB_CHARSET_UTF8, &m), GB_MANSCDP_EARG);
    m.kind = GB_MSG_QUERY;
    assert_int_equal(gb_manscdp_build(&b, GB_CHARSET_UTF8, &m), GB_MANSCDP_EARG);
    assert_int_equal(b.len, 0);
    sbuf_free(&b);
}

/* Found by fuzz_manscdp: a RecordList under another command was built back
 * as an empty DeviceList plus the RecordList, and the parser (first list
 * wins) then lost the records. */
static void test_one_list_per_message(void **state)
{
    (void)state;
    const char *body = "<Control><CmdType>DeviceControl</CmdType><RecordList Num=\"1\"><Item><DeviceID>x</DeviceID>"
                       "</Item></RecordList></Control>";
    gb_manscdp_t m, r;
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.record_count, 1);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build(&b, GB_CHARSET_UTF8, &m), 0);
    assert_null(strstr(b.data, "DeviceList"));
    assert_int_equal(gb_manscdp_parse(b.data, b.len, NULL, &r), 0);
    assert_int_equal(r.record_count, 1);
    assert_string_equal(r.records[0].device_id, "x");
    gb_manscdp_free(&r);
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

static void test_charset_names(void **state)
{
    (void)state;
    gb_charset_t cs;
    assert_int_equal(gb_charset_from_name("gb2312", &cs), 0);
    assert_int_equal(cs, GB_CHARSET_GB2312);
    assert_int_equal(gb_charset_from_name("UTF8", &cs), 0);
    assert_int_equal(cs, GB_CHARSET_UTF8);
    assert_int_equal(gb_charset_from_name("gb18030", &cs), 0);
    assert_int_equal(cs, GB_CHARSET_GB18030);
    assert_int_equal(gb_charset_from_name("latin1", &cs), -1);
    assert_string_equal(gb_charset_name(GB_CHARSET_UTF8), "UTF-8");
    assert_string_equal(gb_cmd_name(GB_CMD_RECORD_INFO), "RecordInfo");
    assert_null(gb_cmd_name(GB_CMD_UNKNOWN));
    assert_string_equal(gb_msg_kind_name(GB_MSG_CONTROL), "Control");
    assert_string_equal(gb_catalog_event_name(GB_EVENT_UPDATE), "UPDATE");
}

/* §A.2.5.3: an alarm as a Hikvision-style camera sends it (GB2312, the
 * alarm type inside <Info>, a position), read back field by field. */
static void test_alarm_notify(void **state)
{
    (void)state;
    gb_manscdp_t m;
    const char *body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Notify>\n<CmdType>Alarm</CmdType>\n<SN>17</SN>\n"
                       "<DeviceID>34020000001340000001</DeviceID>\n<AlarmPriority>2</AlarmPriority>\n"
                       "<AlarmMethod>5</AlarmMethod>\n<AlarmTime>2026-12-06T20:01:02</AlarmTime>\n"
                       "<AlarmDescription>移动侦测</AlarmDescription>\n<Longitude>116.40</Longitude>\n"
                       "<Latitude>39.91</Latitude>\n<Info>\n<AlarmType>2</AlarmType>\n</Info>\n</Notify>\n";
    assert_int_equal(parse_cstr(body, &m), 0);
    assert_int_equal(m.kind, GB_MSG_NOTIFY);
    assert_int_equal(m.cmd, GB_CMD_ALARM);
    assert_string_equal(m.device_id, "34020000001340000001");
    assert_string_equal(m.alarm.priority, "2");
    assert_string_equal(m.alarm.method, "5");
    assert_string_equal(m.alarm.time, "2026-12-06T20:01:02");
    assert_string_equal(m.alarm.description, "移动侦测");
    assert_string_equal(m.alarm.type, "2");
    assert_true(m.has_position);
    assert_true(m.longitude > 116.39 && m.longitude < 116.41);

    /* Built back in GB2312 and parsed again: the same alarm. */
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_alarm_notify(&b, GB_CHARSET_GB2312, 18, m.device_id, &m.alarm, true,
                                                   m.longitude, m.latitude), 0);
    assert_non_null(strstr(b.data, "<Info>\n<AlarmType>2</AlarmType>\n</Info>"));
    gb_manscdp_t back;
    assert_int_equal(parse_cstr(b.data, &back), 0);
    assert_int_equal(back.cmd, GB_CMD_ALARM);
    assert_int_equal(back.sn, 18);
    assert_string_equal(back.alarm.description, "移动侦测");
    assert_string_equal(back.alarm.type, "2");
    assert_true(back.has_position);
    gb_manscdp_free(&back);
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

/* §A.2.5.6: a position needs both coordinates; one alone is no position. */
static void test_mobile_position_notify(void **state)
{
    (void)state;
    gb_position_t p = {.time = (char *)"2026-12-06T20:01:02", .speed = (char *)"12.5", .direction = (char *)"90",
                       .altitude = (char *)"44"};
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_position_notify(&b, GB_CHARSET_UTF8, 3, "34020000001320000001", &p, 116.5, 39.75), 0);
    gb_manscdp_t m;
    assert_int_equal(parse_cstr(b.data, &m), 0);
    assert_int_equal(m.cmd, GB_CMD_MOBILE_POSITION);
    assert_true(m.has_position);
    assert_true(m.longitude == 116.5 && m.latitude == 39.75);
    assert_string_equal(m.position.time, "2026-12-06T20:01:02");
    assert_string_equal(m.position.speed, "12.5");
    assert_string_equal(m.position.direction, "90");
    assert_string_equal(m.position.altitude, "44");
    gb_manscdp_free(&m);
    sbuf_free(&b);

    const char *half = "<Notify><CmdType>MobilePosition</CmdType><SN>1</SN><DeviceID>34020000001320000001</DeviceID>"
                       "<Longitude>116.5</Longitude><Latitude>north</Latitude></Notify>";
    assert_int_equal(parse_cstr(half, &m), 0);
    assert_false(m.has_position);
    gb_manscdp_free(&m);
}

/* The SUBSCRIBE bodies (§9.11, §9.4, §9.12): a Query of the command, with
 * Interval only for positions; other commands are no subscription. */
static void test_subscribe_queries(void **state)
{
    (void)state;
    static const gb_cmd_t cmds[] = {GB_CMD_CATALOG, GB_CMD_ALARM, GB_CMD_MOBILE_POSITION};
    for (size_t i = 0; i < 3; i++) {
        sbuf_t b;
        sbuf_init(&b);
        int interval = cmds[i] == GB_CMD_MOBILE_POSITION ? 5 : -1;
        assert_int_equal(gb_manscdp_build_subscribe_query(&b, GB_CHARSET_GB2312, cmds[i], 9, "34020000001320000001",
                                                          interval), 0);
        gb_manscdp_t m;
        assert_int_equal(parse_cstr(b.data, &m), 0);
        assert_int_equal(m.kind, GB_MSG_QUERY);
        assert_int_equal(m.cmd, cmds[i]);
        assert_int_equal(m.interval, interval);
        assert_int_equal(strstr(b.data, "<Interval>") != NULL, interval >= 0);
        gb_manscdp_free(&m);
        sbuf_free(&b);
    }
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_subscribe_query(&b, GB_CHARSET_GB2312, GB_CMD_DEVICE_INFO, 1, "x", -1),
                     GB_MANSCDP_EARG);
    assert_int_equal(b.len, 0);
    sbuf_free(&b);
}

/* §A.2.3.1.7: the reset is a DeviceControl with AlarmCmd ResetAlarm. */
static void test_alarm_reset(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_alarm_reset(&b, GB_CHARSET_GB2312, 4, "34020000001340000001"), 0);
    gb_manscdp_t m;
    assert_int_equal(parse_cstr(b.data, &m), 0);
    assert_int_equal(m.kind, GB_MSG_CONTROL);
    assert_int_equal(m.cmd, GB_CMD_DEVICE_CONTROL);
    assert_string_equal(m.control.alarm_cmd, "ResetAlarm");
    assert_null(m.control.ptz_cmd);
    gb_manscdp_free(&m);
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_exact_and_back),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_catalog_round_trip_gb2312),
        cmocka_unit_test(test_catalog_round_trip_utf8),
        cmocka_unit_test(test_catalog_round_trip_gb18030),
        cmocka_unit_test(test_catalog_slices),
        cmocka_unit_test(test_catalog_notify),
        cmocka_unit_test(test_device_info_and_status),
        cmocka_unit_test(test_record_info),
        cmocka_unit_test(test_device_control),
        cmocka_unit_test(test_hikvision_style_catalog),
        cmocka_unit_test(test_dahua_style_lying_declaration),
        cmocka_unit_test(test_charset_detection),
        cmocka_unit_test(test_unencodable_characters),
        cmocka_unit_test(test_unknown_cmd_and_case),
        cmocka_unit_test(test_recover_unescaped_ampersand),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_one_list_per_message),
        cmocka_unit_test(test_charset_names),
        cmocka_unit_test(test_alarm_notify),
        cmocka_unit_test(test_mobile_position_notify),
        cmocka_unit_test(test_subscribe_queries),
        cmocka_unit_test(test_alarm_reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
