/* fuzz_lower_report.c — libFuzzer target for what a middle node reads from
 * the cluster's event stream (Redis, [redis] events_stream) when it relays
 * another node's alarm or position upward (src/gb/lower/lower_nodes.c,
 * lower_subs.c; issue 16): the event's JSON, judged by
 * gb_lower_view_report_kind, then written into the upstream's Alarm /
 * MobilePosition Notify by gb_lower_report_body in each charset.
 *
 * Beyond "no crash": nothing is taken while the view catches up or when the
 * event names this node; a body written reads back as a MANSCDP Notify of
 * the event's kind whose DeviceID is the event's channel (else device), a
 * position with its Longitude and Latitude.
 *
 *   tests/fuzz/fuzz_lower_report -max_total_time=60 tests/fuzz/corpus/fuzz_lower_report */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/sbuf.h"
#include "gb/lower/lower_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *ev = json_loadb((const char *)data, size, 0, NULL);
    if (!ev) return 0;
    int kind = gb_lower_view_report_kind(ev, "node-a", true);
    if (gb_lower_view_report_kind(ev, "node-a", false) != -1) abort(); /* replayed at start */
    const char *node = json_string_value(json_object_get(ev, "node"));
    if (node && gb_lower_view_report_kind(ev, node, true) != -1) abort(); /* our own */
    if (kind != -1 && kind != GB_UP_SUB_ALARM && kind != GB_UP_SUB_POSITION) abort();
    /* The writer, whatever the judge said (a bad event must not crash it). */
    for (int alarm = 0; alarm < 2; alarm++) {
        for (int cs = GB_CHARSET_GB2312; cs <= GB_CHARSET_GB18030; cs++) {
            sbuf_t body;
            sbuf_init(&body);
            int rc = gb_lower_report_body(&body, (gb_charset_t)cs, 7, alarm, ev);
            if (rc == 0) {
                const char *id = json_string_value(json_object_get(ev, "channel"));
                if (!id) id = json_string_value(json_object_get(ev, "device"));
                gb_manscdp_t m;
                if (gb_manscdp_parse(body.data, body.len, NULL, &m) != 0) abort();
                if (m.kind != GB_MSG_NOTIFY || m.cmd != (alarm ? GB_CMD_ALARM : GB_CMD_MOBILE_POSITION)) abort();
                if (!id || !m.device_id || strcmp(m.device_id, id)) abort();
                if (!alarm && !m.has_position) abort();
                gb_manscdp_free(&m);
            } else if (rc != -1) {
                abort();
            }
            sbuf_free(&body);
        }
    }
    json_decref(ev);
    return 0;
}
