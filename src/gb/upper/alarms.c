/* alarms.c — what devices report about themselves besides their catalog:
 * alarms (GB/T 28181-2016 §9.4, Notify Alarm §A.2.5.3) kept in a bounded
 * ring for GET /api/v1/gb/alarms and published as gb.alarm, mobile
 * positions (§9.12, Notify MobilePosition §A.2.5.6) kept per device, and the
 * alarm reset sent back (DeviceControl AlarmCmd ResetAlarm, §A.2.3.1.7).
 *
 * Both notifies arrive either within our subscription (device_subs.c) or as
 * a MESSAGE (upper.c): devices differ, and the body is the same. The ring
 * holds the newest GB_ALARMS_MAX alarms in memory only: an alarm history
 * belongs to the event stream and its webhooks, not to this node's store. */
#include <errno.h>
#include <string.h>

#include "gb/upper/upper_int.h"

#include "base/clock.h"

#define MANSCDP_CT "Application/MANSCDP+xml"

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

/* A number when the device sent one ("4"), else its text or null. */
static json_t *num_or_text(const char *s)
{
    if (!s || !*s) return json_null();
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v >= 0 && v < 1000000 ? json_integer(v) : json_string(s);
}

static void ring_push(struct gb_alarm_ring *r, json_t *a)
{
    uint32_t slot = (r->head + r->count) % GB_ALARMS_MAX;
    if (r->count == GB_ALARMS_MAX) {
        json_decref(r->items[r->head]); /* the oldest goes */
        r->items[r->head] = NULL;
        r->head = (r->head + 1) % GB_ALARMS_MAX;
        slot = (r->head + r->count - 1) % GB_ALARMS_MAX;
    } else {
        r->count++;
    }
    r->items[slot] = a;
    r->total++;
}

void gb_alarm_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    char now[32];
    gb_iso_time(clock_wall_ms(), now);
    json_t *a = json_object();
    json_object_set_new(a, "id", json_integer((json_int_t)g->alarms.total + 1));
    json_object_set_new(a, "device", json_string(d->id));
    json_object_set_new(a, "channel", str_or_null(m->device_id));
    json_object_set_new(a, "priority", num_or_text(m->alarm.priority));
    json_object_set_new(a, "method", num_or_text(m->alarm.method));
    /* "type" and "time" are the event envelope's own names (events.h). */
    json_object_set_new(a, "alarm_type", num_or_text(m->alarm.type));
    json_object_set_new(a, "alarm_time", str_or_null(m->alarm.time));
    json_object_set_new(a, "description", str_or_null(m->alarm.description));
    if (m->has_position) {
        json_object_set_new(a, "longitude", json_real(m->longitude));
        json_object_set_new(a, "latitude", json_real(m->latitude));
    }
    json_object_set_new(a, "received_at", json_string(now));
    char desc[64];
    log_info("gb alarm from %s channel %s: priority %s method %s \"%s\"", d->id, m->device_id ? m->device_id : "-",
             m->alarm.priority ? m->alarm.priority : "-", m->alarm.method ? m->alarm.method : "-",
             gb_log_text(m->alarm.description, desc, sizeof(desc)));
    gb_publish(g, "gb.alarm", json_deep_copy(a));
    ring_push(&g->alarms, a);
}

void gb_position_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    if (!m->has_position) {
        log_debug("gb MobilePosition from %s without Longitude/Latitude ignored", d->id);
        return;
    }
    char now[32];
    gb_iso_time(clock_wall_ms(), now);
    json_t *p = json_object();
    json_object_set_new(p, "channel", str_or_null(m->device_id));
    json_object_set_new(p, "longitude", json_real(m->longitude));
    json_object_set_new(p, "latitude", json_real(m->latitude));
    json_object_set_new(p, "position_time", str_or_null(m->position.time));
    json_object_set_new(p, "speed", num_or_text(m->position.speed));
    json_object_set_new(p, "direction", num_or_text(m->position.direction));
    json_object_set_new(p, "altitude", num_or_text(m->position.altitude));
    json_object_set_new(p, "received_at", json_string(now));
    json_decref(d->position);
    d->position = p;
    json_t *ev = json_deep_copy(p);
    json_object_set_new(ev, "device", json_string(d->id));
    gb_publish(g, "gb.position", ev);
}

json_t *gb_upper_alarms_json(struct gb_upper *g, const char *device_id, size_t limit)
{
    const struct gb_alarm_ring *r = &g->alarms;
    json_t *arr = json_array();
    for (uint32_t i = r->count; i-- > 0;) { /* newest first */
        if (limit && json_array_size(arr) >= limit) break;
        json_t *a = r->items[(r->head + i) % GB_ALARMS_MAX];
        if (device_id && *device_id && strcmp(json_string_value(json_object_get(a, "device")), device_id) != 0)
            continue;
        json_array_append(arr, a);
    }
    return json_pack("{s:o,s:I}", "alarms", arr, "total", (json_int_t)r->total);
}

void gb_alarms_free(struct gb_upper *g)
{
    struct gb_alarm_ring *r = &g->alarms;
    for (uint32_t i = 0; i < r->count; i++) json_decref(r->items[(r->head + i) % GB_ALARMS_MAX]);
    memset(r, 0, sizeof(*r));
}

/* ---- reset ---- */

int gb_alarm_reset_send(struct gb_upper *g, struct gb_device *d, const char *target, struct gb_waiter *wt)
{
    if (!d->online) return -ENOTCONN;
    if (!target || !*target) target = d->id;
    if (!gb_id_valid(str_from_cstr(target))) return -EINVAL;
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_alarm_reset(&body, d->charset, g->next_sn++, target) != 0 || body.failed) {
        sbuf_free(&body);
        return -ENOMEM;
    }
    int rc = gb_control_send(g, d, &body, "the alarm reset", "target", target, wt);
    sbuf_free(&body);
    if (rc != 0) return rc;
    log_info("gb alarm reset to %s for %s", d->id, target);
    return 0;
}

int gb_upper_alarm_reset(struct gb_upper *g, const char *device_id, const char *target, struct gb_waiter *wt)
{
    struct gb_device *d = gb_device_find(g, device_id);
    return d ? gb_alarm_reset_send(g, d, target, wt) : -ENOENT;
}
