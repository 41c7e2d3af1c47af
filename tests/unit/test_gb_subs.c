/* test_gb_subs.c — the upper role's subscriptions to a device
 * (src/gb/upper/device_subs.c, alarms.c), driven without sockets on a fake
 * clock: SUBSCRIBE on register, the 2xx making it active, NOTIFYs within it
 * taken and others refused, the refresh in the same dialog, retry after a
 * refusal, nothing more once the device is offline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gb_upper_harness.h"

#define DEV "34020000001320000001"
#define CH "34020000001340000001"

static void subscribe_alarm(struct gb_config *gb)
{
    snprintf(gb->subscribe, sizeof(gb->subscribe), "alarm, bogus");
    gb->subscribe_expires = 60;
}

static int setup(void **state)
{
    struct gbh *h = malloc(sizeof(*h));
    gbh_init(h);
    subscribe_alarm(&h->cfg.gb);
    assert_int_equal(gbh_start(h), 0);
    assert_int_equal(gb_device_admin_set(h->g, DEV, "devpw", NULL, -1), 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct gbh *h = *state;
    gbh_free(h);
    free(h);
    return 0;
}

/* The value of header name in msg (up to CRLF), copied into out. */
static const char *header(const char *msg, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = strstr(msg, key);
    out[0] = '\0';
    if (!p) return out;
    p += strlen(key);
    size_t n = strcspn(p, "\r");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    return out;
}

/* Answers the request last sent with status (To tag totag, Expires). */
static void answer_last(struct gbh *h, int status, const char *totag, int expires)
{
    char req[4096], via[256], from[256], to[256], cid[128], cseq[64];
    snprintf(req, sizeof(req), "%s", gbh_last(h));
    header(req, "Via", via, sizeof(via));
    header(req, "From", from, sizeof(from));
    header(req, "To", to, sizeof(to));
    header(req, "Call-ID", cid, sizeof(cid));
    header(req, "CSeq", cseq, sizeof(cseq));
    char tagged[300];
    snprintf(tagged, sizeof(tagged), strstr(to, ";tag=") ? "%s" : "%s;tag=%s", to, totag);
    char resp[2048];
    int n = snprintf(resp, sizeof(resp),
                     "SIP/2.0 %d X\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n"
                     "Expires: %d\r\nContent-Length: 0\r\n\r\n",
                     status, via, from, tagged, cid, cseq, expires);
    assert_int_equal(gbh_feed(h, resp, (size_t)n, SIP_TRANSPORT_UDP, 0, 5080), 0);
}

/* A NOTIFY from the device in the dialog (call_id, our tag) carrying body. */
static void notify(struct gbh *h, const char *call_id, const char *our_tag, const char *body, const char *state)
{
    char msg[4096];
    h->seq++;
    int n = snprintf(msg, sizeof(msg),
                     "NOTIFY sip:34020000002000000001@192.0.2.1:5060 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKnt%u;rport\r\n"
                     "From: <sip:" DEV "@3402000000>;tag=dt1\r\nTo: <sip:34020000002000000001@3402000000>;tag=%s\r\n"
                     "Call-ID: %s\r\nCSeq: %u NOTIFY\r\nMax-Forwards: 70\r\nEvent: presence\r\n"
                     "Subscription-State: %s\r\nContent-Type: Application/MANSCDP+xml\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     h->seq, our_tag, call_id, h->seq, state, strlen(body), body);
    assert_int_equal(gbh_feed(h, msg, (size_t)n, SIP_TRANSPORT_UDP, 0, 5080), 0);
}

static const char alarm_body[] =
    "<?xml version=\"1.0\"?><Notify><CmdType>Alarm</CmdType><SN>5</SN><DeviceID>" CH "</DeviceID>"
    "<AlarmPriority>1</AlarmPriority><AlarmMethod>5</AlarmMethod><AlarmTime>2026-12-06T20:01:02</AlarmTime>"
    "<AlarmDescription>door</AlarmDescription><Info><AlarmType>2</AlarmType></Info></Notify>";

static struct gb_sub *alarm_sub(struct gbh *h) { return &gb_device_find(h->g, DEV)->subs[GB_SUB_ALARM]; } /* online: allocated */

static void test_subscribe_notify_refresh(void **state)
{
    struct gbh *h = *state;
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    /* Only what [gb] subscribe names: "alarm" (the unknown word skipped). */
    const char *sub = gbh_last(h);
    assert_non_null(strstr(sub, "SUBSCRIBE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    assert_non_null(strstr(sub, "\r\nEvent: Alarm\r\n"));
    assert_non_null(strstr(sub, "\r\nExpires: 60\r\n"));
    assert_non_null(strstr(sub, "\r\nContact: <sip:"));
    assert_non_null(strstr(sub, "<CmdType>Alarm</CmdType>"));
    assert_null(strstr(sub, "<Interval>"));
    char cid[128], from[256];
    header(sub, "Call-ID", cid, sizeof(cid));
    header(sub, "From", from, sizeof(from));
    const char *tag = strstr(from, ";tag=") + 5;
    assert_int_equal(alarm_sub(h)->state, GB_SUB_PENDING);

    /* The device grants less than asked: 40 s, refreshed at 30 s. */
    answer_last(h, 200, "dt1", 40);
    assert_int_equal(alarm_sub(h)->state, GB_SUB_ACTIVE);
    assert_int_equal(alarm_sub(h)->expires_s, 40);

    /* An alarm within it, whatever the Event value: 200, and the ring has it. */
    notify(h, cid, tag, alarm_body, "active;expires=40");
    assert_int_equal(gbh_last_status(h), 200);
    json_t *a = gb_upper_alarms_json(h->g, DEV, 0);
    assert_int_equal(json_array_size(json_object_get(a, "alarms")), 1);
    json_t *first = json_array_get(json_object_get(a, "alarms"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "channel")), CH);
    assert_int_equal(json_integer_value(json_object_get(first, "priority")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "alarm_type")), 2);
    assert_string_equal(json_string_value(json_object_get(first, "description")), "door");
    json_decref(a);

    /* A NOTIFY of no subscription of ours: 481, nothing taken. */
    notify(h, "other-call", tag, alarm_body, "active");
    assert_int_equal(gbh_last_status(h), 481);
    a = gb_upper_alarms_json(h->g, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(a, "alarms")), 1);
    json_decref(a);

    /* The refresh: same Call-ID and tags, CSeq 2, before the 40 s run out. */
    uint64_t before = h->nsent;
    gbh_advance(h, 29000);
    assert_int_equal(h->nsent, before);
    gbh_advance(h, 1000);
    const char *re = gbh_last(h);
    assert_non_null(strstr(re, "SUBSCRIBE sip:"));
    char cid2[128], to2[256], cseq2[64];
    assert_string_equal(header(re, "Call-ID", cid2, sizeof(cid2)), cid);
    assert_non_null(strstr(header(re, "To", to2, sizeof(to2)), ";tag=dt1"));
    assert_string_equal(header(re, "CSeq", cseq2, sizeof(cseq2)), "2 SUBSCRIBE");
    answer_last(h, 200, "dt1", 40);
    assert_int_equal(alarm_sub(h)->state, GB_SUB_ACTIVE);
}

static void test_refused_retried_offline_forgets_489_ends(void **state)
{
    struct gbh *h = *state;
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    char cid[128];
    header(gbh_last(h), "Call-ID", cid, sizeof(cid));
    answer_last(h, 503, "dt1", 0);
    assert_int_equal(alarm_sub(h)->state, GB_SUB_IDLE);
    assert_string_equal(alarm_sub(h)->last_error, "status-503");
    /* Tried again after 30 s, as a new dialog. */
    gbh_advance(h, 30000);
    char cid2[128], to[256];
    assert_non_null(strstr(gbh_last(h), "SUBSCRIBE sip:"));
    assert_string_not_equal(header(gbh_last(h), "Call-ID", cid2, sizeof(cid2)), cid);
    assert_null(strstr(header(gbh_last(h), "To", to, sizeof(to)), ";tag="));
    answer_last(h, 200, "dt2", 60);
    assert_int_equal(alarm_sub(h)->state, GB_SUB_ACTIVE);

    /* The device unregisters: the subscriptions are forgotten (and their memory
     * given back), no refresh goes. */
    gbh_register(h, DEV, "devpw", 0, SIP_TRANSPORT_UDP, 0, 5080);
    assert_null(gb_device_find(h->g, DEV)->subs);
    uint64_t before = h->nsent;
    gbh_advance(h, 120000);
    assert_int_equal(h->nsent, before);
    /* Back online: a new subscription. */
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    assert_non_null(strstr(gbh_last(h), "SUBSCRIBE sip:"));
    /* 489: the device does not serve alarms; not asked again while it stays registered. */
    answer_last(h, 489, "dt3", 0);
    assert_string_equal(alarm_sub(h)->last_error, "status-489");
    before = h->nsent;
    gbh_advance(h, 120000);
    assert_int_equal(h->nsent, before);
}

static struct gb_sub *sub_of(struct gbh *h, int kind) { return &gb_device_find(h->g, DEV)->subs[kind]; }

/* The names in the device record's "subscribe" list, comma-joined. */
static const char *record_list(struct gbh *h, char *out, size_t cap)
{
    json_t *d = gb_upper_device_json(h->g, DEV);
    size_t i, n = 0;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(json_object_get(d, "subscribe"), i, e)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", json_string_value(e));
    json_decref(d);
    return out;
}

/* A device's own list: kinds added are subscribed at once, kinds dropped are
 * ended with SUBSCRIBE Expires 0 in their dialog (and not tried again), -1
 * goes back to [gb] subscribe; while offline nothing is sent and the list
 * applies at the next registration. */
static void test_own_list_applied(void **state)
{
    struct gbh *h = *state;
    char list[64];
    assert_int_equal(gb_device_admin_subscribe(h->g, "34020000001320000099", 1), -ENOENT);
    assert_int_equal(gb_device_admin_subscribe(h->g, DEV, 8), -EINVAL);
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    char cid[128], from[256];
    header(gbh_last(h), "Call-ID", cid, sizeof(cid));
    header(gbh_last(h), "From", from, sizeof(from));
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", strstr(from, ";tag=") + 5);
    answer_last(h, 200, "dt1", 60);
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_ACTIVE);
    assert_string_equal(record_list(h, list, sizeof(list)), "alarm");

    /* Position added: its SUBSCRIBE goes now; the alarm one stays. */
    uint64_t before = h->nsent;
    assert_int_equal(gb_device_admin_subscribe(h->g, DEV, GB_SUBSCRIBE_ALARM | GB_SUBSCRIBE_POSITION), 0);
    assert_int_equal(h->nsent, before + 1);
    assert_non_null(strstr(gbh_last(h), "\r\nEvent: MobilePosition\r\n"));
    assert_non_null(strstr(gbh_last(h), "<Interval>"));
    answer_last(h, 200, "dp1", 60);
    assert_int_equal(sub_of(h, GB_SUB_POSITION)->state, GB_SUB_ACTIVE);
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_ACTIVE);
    assert_string_equal(record_list(h, list, sizeof(list)), "alarm,position");

    /* Alarm dropped: SUBSCRIBE with Expires 0 in its dialog (CSeq 2). */
    before = h->nsent;
    assert_int_equal(gb_device_admin_subscribe(h->g, DEV, GB_SUBSCRIBE_POSITION), 0);
    assert_int_equal(h->nsent, before + 1);
    char v[256];
    const char *end = gbh_last(h);
    assert_non_null(strstr(end, "\r\nEvent: Alarm\r\n"));
    assert_string_equal(header(end, "Expires", v, sizeof(v)), "0");
    assert_string_equal(header(end, "Call-ID", v, sizeof(v)), cid);
    assert_non_null(strstr(header(end, "To", v, sizeof(v)), ";tag=dt1"));
    assert_string_equal(header(end, "CSeq", v, sizeof(v)), "2 SUBSCRIBE");
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_ENDING);
    answer_last(h, 200, "dt1", 0);
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_IDLE);
    /* The device's final NOTIFY still matches the dialog: 200, not retried. */
    notify(h, cid, tag, alarm_body, "terminated;reason=timeout");
    assert_int_equal(gbh_last_status(h), 200);
    before = h->nsent;
    gbh_advance(h, 40000); /* below the position refresh (45 s) */
    assert_int_equal(h->nsent, before);
    assert_string_equal(record_list(h, list, sizeof(list)), "position");
    json_t *d = gb_upper_device_json(h->g, DEV);
    assert_true(json_is_true(json_object_get(d, "own_subscribe")));
    assert_null(json_object_get(json_object_get(d, "subscriptions"), "alarm"));
    json_decref(d);

    /* Back to [gb] subscribe (alarm): position ended, alarm subscribed anew. */
    assert_int_equal(gb_device_admin_subscribe(h->g, DEV, -1), 0);
    assert_int_equal(sub_of(h, GB_SUB_POSITION)->state, GB_SUB_ENDING);
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_PENDING);
    assert_non_null(strstr(gbh_last(h), "\r\nEvent: Alarm\r\n"));
    assert_null(strstr(header(gbh_last(h), "To", v, sizeof(v)), ";tag="));

    /* Offline: a change sends nothing; the next registration applies it. */
    gbh_register(h, DEV, "devpw", 0, SIP_TRANSPORT_UDP, 0, 5080);
    before = h->nsent;
    assert_int_equal(gb_device_admin_subscribe(h->g, DEV, GB_SUBSCRIBE_CATALOG), 0);
    assert_int_equal(h->nsent, before);
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    assert_non_null(strstr(gbh_last(h), "\r\nEvent: Catalog\r\n"));
    assert_int_equal(sub_of(h, GB_SUB_ALARM)->state, GB_SUB_IDLE);
    /* "none": nothing subscribed, and the stored text says so. */
    char text[GB_SUBS_TEXT_MAX];
    gb_subs_own_text(0, text);
    assert_string_equal(text, "none");
    assert_int_equal(gb_subs_own_from_text("none"), 0);
    assert_int_equal(gb_subs_own_from_text(""), -1);
    gb_subs_own_text(GB_SUBSCRIBE_CATALOG | GB_SUBSCRIBE_POSITION, text);
    assert_string_equal(text, "catalog,position");
    assert_int_equal(gb_subs_own_from_text(text), GB_SUBSCRIBE_CATALOG | GB_SUBSCRIBE_POSITION);
}

/* Positions come in MESSAGE too (devices differ): the newest is the device's. */
static void test_position_by_message(void **state)
{
    struct gbh *h = *state;
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    static const char body[] = "<?xml version=\"1.0\"?><Notify><CmdType>MobilePosition</CmdType><SN>2</SN>"
                               "<DeviceID>" DEV "</DeviceID><Time>2026-12-06T20:01:02</Time>"
                               "<Longitude>116.5</Longitude><Latitude>39.75</Latitude><Speed>3</Speed></Notify>";
    gbh_message(h, DEV, body, sizeof(body) - 1, 5080);
    assert_int_equal(gbh_last_status(h), 200);
    json_t *d = gb_upper_device_json(h->g, DEV);
    json_t *p = json_object_get(d, "position");
    assert_true(json_is_object(p));
    assert_true(json_real_value(json_object_get(p, "longitude")) == 116.5);
    assert_int_equal(json_integer_value(json_object_get(p, "speed")), 3);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscribe_notify_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_retried_offline_forgets_489_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_position_by_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_list_applied, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
