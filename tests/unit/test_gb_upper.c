/* test_gb_upper.c — the GB/T 28181 upper role (src/gb/upper/upper.c, catalog.c) on
 * a fake clock: REGISTER challenge/digest/Date, 403 for ids not allowed,
 * allow_unknown, keepalive window and registration expiry (timers, exact
 * times), 403 to keepalives of unregistered devices, TCP loss, catalog
 * assembly across MESSAGEs (repeats, SumNum, timeout with a partial merge),
 * the channel tree (ParentID, BusinessGroupID, "a/b" paths, cycles), catalog
 * Notify, DeviceInfo, bad bodies, the device handles of upper.h (what the
 * middle node reads), the answers to a survivor's reap of a dead node's
 * devices (node death). Streams need sockets: tests/peers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/log.h"
#include "gb_upper_harness.h"
#include "app/events_stream.h"
#include "events/events.h"
#include "gb/upper/device_mirror.h"
#include "registrar/cluster.h"

#define DEV "34020000001320000001"

/* The role copies its [gb] section when built: a test that needs other
 * settings gets its own setup with them. */
static int setup_with(void **state, void (*tweak)(struct gb_config *gb))
{
    struct gbh *h = malloc(sizeof(*h));
    gbh_init(h);
    h->cfg.gb.keepalive_interval = 60;
    h->cfg.gb.keepalive_misses = 3;
    if (tweak) tweak(&h->cfg.gb);
    assert_int_equal(gbh_start(h), 0);
    assert_int_equal(gb_device_admin_set(h->g, DEV, "devpw", NULL, -1), 0);
    *state = h;
    return 0;
}

static int setup(void **state) { return setup_with(state, NULL); }

static void allow_unknown_qop(struct gb_config *gb)
{
    gb->allow_unknown = true;
    gb->qop = true;
}
static int setup_allow_unknown_qop(void **state) { return setup_with(state, allow_unknown_qop); }

static void catalog_on_register(struct gb_config *gb)
{
    gb->catalog_on_register = true;
    gb->info_on_register = true;
}
static int setup_catalog_on_register(void **state) { return setup_with(state, catalog_on_register); }

static void catalog_one_slot(struct gb_config *gb)
{
    gb->catalog_on_register = true;
    gb->info_on_register = false; /* the catalog queue alone */
    gb->catalog_concurrency = 1;
}
static int setup_catalog_one_slot(void **state) { return setup_with(state, catalog_one_slot); }

static void catalog_and_info_two_slots(struct gb_config *gb)
{
    gb->catalog_on_register = true;
    gb->info_on_register = true;
    gb->catalog_concurrency = 2;
}
static int setup_catalog_two_slots(void **state) { return setup_with(state, catalog_and_info_two_slots); }

static int teardown(void **state)
{
    struct gbh *h = *state;
    gbh_free(h);
    free(h);
    return 0;
}

static bool online(struct gbh *h, const char *id)
{
    struct gb_device *d = gb_device_find(h->g, id);
    return d && d->online;
}

static void test_register(void **state)
{
    struct gbh *h = *state;
    /* Challenge: MD5, realm = domain, no qop by default. */
    gbh_send_register(h, DEV, 3600, NULL, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 401);
    assert_non_null(strstr(gbh_last(h), "WWW-Authenticate: Digest realm=\"3402000000\""));
    assert_non_null(strstr(gbh_last(h), "algorithm=MD5"));
    assert_null(strstr(gbh_last(h), "qop"));
    assert_false(online(h, DEV));
    /* Wrong password: 401 again. */
    assert_int_equal(gbh_register(h, DEV, "nope", 3600, SIP_TRANSPORT_UDP, 0, 5080), 401);
    assert_false(online(h, DEV));
    /* The default password is not this device's. */
    assert_int_equal(gbh_register(h, DEV, "defaultpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 401);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    const char *ok = gbh_last(h);
    const char *date = strstr(ok, "\r\nDate: ");
    assert_non_null(date);
    /* YYYY-MM-DDThh:mm:ss.sss */
    int y, mo, d, hh, mi, ss, ms, end = 0;
    assert_int_equal(sscanf(date + 8, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%n", &y, &mo, &d, &hh, &mi, &ss, &ms, &end), 7);
    assert_int_equal(end, 23);
    assert_memory_equal(date + 8 + end, "\r\n", 2);
    assert_non_null(strstr(ok, "Expires: 3600\r\n"));
    assert_true(online(h, DEV));
    struct gb_device *dv = gb_device_find(h->g, DEV);
    assert_int_equal(dv->proto, SIP_TRANSPORT_UDP);
    assert_string_equal(dv->contact, "sip:" DEV "@192.0.2.9:5080");
    /* Unknown id: 403 without a challenge; a From that is not a GB id: 403. */
    gbh_send_register(h, "34020000001320000099", 3600, NULL, SIP_TRANSPORT_UDP, 0, 5081);
    assert_int_equal(gbh_last_status(h), 403);
    gbh_send_register(h, "3402000000132000009", 3600, NULL, SIP_TRANSPORT_UDP, 0, 5081);
    assert_int_equal(gbh_last_status(h), 403);
    assert_null(gb_device_find(h->g, "34020000001320000099"));
    /* Expires 0: offline. */
    assert_int_equal(gbh_register(h, DEV, "devpw", 0, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_false(online(h, DEV));
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.online, 0);
    assert_int_equal(st.devices, 1);
}

static void test_allow_unknown_and_qop(void **state)
{
    struct gbh *h = *state; /* allow_unknown, qop */
    gbh_send_register(h, "34020000001320000050", 3600, NULL, SIP_TRANSPORT_UDP, 0, 5090);
    assert_int_equal(gbh_last_status(h), 401);
    assert_non_null(strstr(gbh_last(h), "qop=\"auth\""));
    assert_int_equal(gbh_register(h, "34020000001320000050", "defaultpw", 3600, SIP_TRANSPORT_UDP, 0, 5090), 200);
    assert_true(online(h, "34020000001320000050"));
    /* A record with auth off takes REGISTER without a challenge. */
    assert_int_equal(gb_device_admin_set(h->g, "34020000001320000051", NULL, "UTF-8", 0), 0);
    gbh_send_register(h, "34020000001320000051", 3600, NULL, SIP_TRANSPORT_UDP, 0, 5091);
    assert_int_equal(gbh_last_status(h), 200);
    assert_int_equal(gb_device_find(h->g, "34020000001320000051")->charset, GB_CHARSET_UTF8);
    /* Bad admin input. */
    assert_int_equal(gb_device_admin_set(h->g, "123", NULL, NULL, -1), -EINVAL);
    assert_int_equal(gb_device_admin_set(h->g, DEV, NULL, "KOI8-R", -1), -EINVAL);
    assert_int_equal(gb_device_admin_set(h->g, DEV, "a\r\nb", NULL, -1), -EINVAL);
    assert_int_equal(gb_device_admin_delete(h->g, "34020000001320000050"), 0);
    assert_null(gb_device_find(h->g, "34020000001320000050"));
    assert_int_equal(gb_device_admin_delete(h->g, "34020000001320000050"), -ENOENT);
}

static void test_keepalive_window(void **state)
{
    struct gbh *h = *state;
    /* Keepalive before registering: 403 (the device must register). */
    assert_int_equal(gbh_keepalive(h, DEV, 5080), 403);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    /* Keepalives every 60 s keep it online well past 3 x 60 s. */
    for (int i = 0; i < 5; i++) {
        gbh_advance(h, 60000);
        assert_int_equal(gbh_keepalive(h, DEV, 5080), 200);
        assert_true(online(h, DEV));
    }
    /* Then silence: offline exactly 180 s after the last keepalive. */
    gbh_advance(h, 179999);
    assert_true(online(h, DEV));
    gbh_advance(h, 2);
    assert_false(online(h, DEV));
    assert_int_equal(gbh_keepalive(h, DEV, 5080), 403);
    /* A MANSCDP Response from an offline device: 403 too. */
    const char *resp = "<?xml version=\"1.0\"?><Response><CmdType>DeviceInfo</CmdType><SN>1</SN>"
                       "<DeviceID>" DEV "</DeviceID><Result>OK</Result></Response>";
    assert_int_equal(gbh_message(h, DEV, resp, strlen(resp), 5080), 403);
}

static void test_expiry_and_tcp_loss(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 100, SIP_TRANSPORT_UDP, 0, 5080), 200);
    for (int i = 0; i < 3; i++) {
        gbh_advance(h, 30000);
        gbh_keepalive(h, DEV, 5080);
    }
    assert_true(online(h, DEV));
    gbh_advance(h, 9999); /* 99.999 s after the REGISTER */
    assert_true(online(h, DEV));
    gbh_advance(h, 2);
    assert_false(online(h, DEV));
    /* Over TCP: the connection's loss ends it at once. */
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_TCP, 77, 40000), 200);
    assert_true(online(h, DEV));
    gb_upper_on_conn_lost(h->g, 78);
    assert_true(online(h, DEV));
    gb_upper_on_conn_lost(h->g, 77);
    assert_false(online(h, DEV));
    /* Re-registering over UDP leaves the connection table. */
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_TCP, 79, 40001), 200);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    gb_upper_on_conn_lost(h->g, 79);
    assert_true(online(h, DEV));
}

/* ---- catalog ---- */

struct result {
    struct gb_waiter wt;
    int status;
    json_t *body;
};

static void on_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct result *r = (struct result *)wt;
    r->status = status;
    json_decref(r->body);
    r->body = body;
}

/* SN of the last MANSCDP query sent. */
static uint32_t last_sn(struct gbh *h)
{
    const char *p = strstr(gbh_last(h), "<SN>");
    assert_non_null(p);
    return (uint32_t)strtoul(p + 4, NULL, 10);
}

static void item(gb_catalog_item_t *it, const char *id, const char *name, const char *parent, const char *bg)
{
    gb_catalog_item_init(it);
    it->device_id = (char *)id;
    it->name = (char *)name;
    it->parent_id = (char *)parent;
    it->business_group_id = (char *)bg;
    it->status = GB_ONOFF_ON;
}

static int send_part(struct gbh *h, uint32_t sn, const gb_catalog_item_t *items, size_t total, size_t from, size_t n,
                     size_t sum)
{
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, sn, DEV, items, total, from, n), 0);
    /* The builder writes SumNum = total; a device may claim more (tests a timeout). */
    if (sum != total) {
        char tag[64], rep[64];
        snprintf(tag, sizeof(tag), "<SumNum>%zu</SumNum>", total);
        snprintf(rep, sizeof(rep), "<SumNum>%zu</SumNum>", sum);
        char *p = strstr(b.data, tag);
        assert_non_null(p);
        sbuf_t c;
        sbuf_init(&c);
        sbuf_append(&c, b.data, (size_t)(p - b.data));
        sbuf_append_cstr(&c, rep);
        sbuf_append_cstr(&c, p + strlen(tag));
        sbuf_free(&b);
        b = c;
    }
    int st = gbh_message(h, DEV, b.data, b.len, 5080);
    sbuf_free(&b);
    return st;
}

static void test_catalog_assembly_and_tree(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    assert_non_null(strstr(gbh_last(h), "<CmdType>Catalog</CmdType>"));
    assert_non_null(strstr(gbh_last(h), "encoding=\"GB2312\""));
    uint32_t sn = last_sn(h);
    /* A second asker joins the same query: no new MESSAGE. */
    uint64_t sent = h->nsent;
    struct result r2 = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r2.wt), 0);
    assert_int_equal(h->nsent, sent);

    gb_catalog_item_t it[8];
    item(&it[0], "34020000002150000001", "监控中心", DEV, NULL);
    item(&it[1], "34020000002160000001", "一楼", NULL, "34020000002150000001");      /* by BusinessGroupID */
    item(&it[2], "34020000001310000001", "大门", "34020000002160000001", NULL);
    item(&it[3], "34020000001310000002", "前台", DEV "/34020000002160000001", NULL); /* path form */
    item(&it[4], "34020000001310000003", "环A", "34020000001310000004", NULL);       /* a cycle */
    item(&it[5], "34020000001310000004", "环B", "34020000001310000003", NULL);
    item(&it[6], "34020000001310000005", "自己", "34020000001310000005", NULL);       /* its own parent */
    item(&it[7], "34020000001310000006", "后门", NULL, NULL);
    /* 8 items in 3 parts, the middle one repeated (UDP duplicates). */
    assert_int_equal(send_part(h, sn, it, 8, 0, 3, 8), 200);
    assert_int_equal(send_part(h, sn, it, 8, 3, 3, 8), 200);
    assert_int_equal(send_part(h, sn, it, 8, 3, 3, 8), 200);
    assert_int_equal(r.status, 0);
    assert_int_equal(send_part(h, sn, it, 8, 6, 2, 8), 200);
    assert_int_equal(r.status, 200);
    assert_int_equal(r2.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.body, "sum_num")), 8);
    json_t *chs = json_object_get(r.body, "channels");
    assert_int_equal(json_array_size(chs), 8);
    assert_string_equal(json_string_value(json_object_get(json_array_get(chs, 0), "name")), "监控中心");
    struct gb_device *d = gb_device_find(h->g, DEV);
    assert_int_equal(d->channel_count, 8);

    json_t *tree = gb_channels_tree_json(d);
    json_t *roots = json_object_get(tree, "channels");
    /* Roots: the group, the self-parented one, the orphan, then one node of
     * the cycle (what a cycle hides is put at the root level last). */
    assert_int_equal(json_array_size(roots), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(roots, 1), "id")), "34020000001310000005");
    assert_string_equal(json_string_value(json_object_get(json_array_get(roots, 2), "id")), "34020000001310000006");
    json_t *grp = json_array_get(roots, 0);
    assert_string_equal(json_string_value(json_object_get(grp, "id")), "34020000002150000001");
    json_t *vo = json_array_get(json_object_get(grp, "children"), 0);
    assert_string_equal(json_string_value(json_object_get(vo, "name")), "一楼");
    json_t *cams = json_object_get(vo, "children");
    assert_int_equal(json_array_size(cams), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cams, 1), "name")), "前台");
    json_t *cyc = json_array_get(roots, 3);
    assert_string_equal(json_string_value(json_object_get(cyc, "id")), "34020000001310000003");
    assert_int_equal(json_array_size(json_object_get(cyc, "children")), 1);
    json_decref(tree);
    json_decref(r.body);
    json_decref(r2.body);

    /* Notify: OFF, DEL, ADD. */
    gb_catalog_item_t ev[3];
    item(&ev[0], "34020000001310000001", NULL, NULL, NULL);
    ev[0].event = GB_EVENT_OFF;
    item(&ev[1], "34020000001310000006", NULL, NULL, NULL);
    ev[1].event = GB_EVENT_DEL;
    item(&ev[2], "34020000001310000007", "新增", "34020000002160000001", NULL);
    ev[2].event = GB_EVENT_ADD;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_notify(&b, GB_CHARSET_UTF8, 99, DEV, ev, 3), 0);
    assert_int_equal(gbh_message(h, DEV, b.data, b.len, 5080), 200);
    sbuf_free(&b);
    assert_int_equal(d->channel_count, 8);
    bool off = false, added = false, deleted = true;
    for (size_t i = 0; i < d->channel_count; i++) {
        if (!strcmp(d->channels[i].id, "34020000001310000001")) off = !strcmp(d->channels[i].status, "OFF");
        if (!strcmp(d->channels[i].id, "34020000001310000007")) added = !strcmp(d->channels[i].name, "新增");
        if (!strcmp(d->channels[i].id, "34020000001310000006")) deleted = false;
    }
    assert_true(off && added && deleted);
}

static void test_catalog_timeout_partial(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    uint32_t sn = last_sn(h);
    gb_catalog_item_t it[3];
    item(&it[0], "34020000001310000001", "a", DEV, NULL);
    item(&it[1], "34020000001310000002", "b", DEV, NULL);
    item(&it[2], "34020000001310000003", "c", DEV, NULL);
    /* The device says 5 but sends 3: after the timeout, 504 and the 3 are kept. */
    assert_int_equal(send_part(h, sn, it, 3, 0, 3, 5), 200);
    gbh_advance(h, GB_QUERY_TIMEOUT_MS - 1);
    assert_int_equal(r.status, 0);
    gbh_advance(h, 2);
    assert_int_equal(r.status, 504);
    assert_string_equal(json_string_value(json_object_get(r.body, "error")), "timeout");
    json_decref(r.body);
    assert_int_equal(gb_device_find(h->g, DEV)->channel_count, 3);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.pending_queries, 0);

    /* A query the device answers 4xx: 502 at once. */
    struct result r2 = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_INFO, NULL, NULL, NULL, &r2.wt), 0);
    /* Answer the MESSAGE with 488 by feeding a response built from it. */
    const char *req = gbh_last(h);
    char mem[16384] __attribute__((aligned(16)));
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    struct sip_msg m;
    assert_int_equal(sip_parse(req, strlen(req), &a, &lim, &m, &err), 0);
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(sip_build_response(&m, 488, NULL, STR_LIT("dt"), NULL, 0, STR_NULL, STR_NULL, &out), 0);
    gbh_feed(h, out.data, out.len, SIP_TRANSPORT_UDP, 0, 5080);
    sbuf_free(&out);
    assert_int_equal(r2.status, 502);
    json_decref(r2.body);

    /* A cancelled waiter is never called. */
    struct result r3 = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_STATUS, NULL, NULL, NULL, &r3.wt), 0);
    gb_waiter_cancel(&r3.wt);
    gbh_advance(h, GB_QUERY_TIMEOUT_MS + 1);
    assert_int_equal(r3.status, 0);
}

static void test_info_and_bad_bodies(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_INFO, NULL, NULL, NULL, &r.wt), 0);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><CmdType>DeviceInfo</CmdType><SN>%u</SN>"
                     "<DeviceID>" DEV "</DeviceID><Result>OK</Result><DeviceName>门口</DeviceName>"
                     "<Manufacturer>M</Manufacturer><Model>X</Model><Firmware>1.0</Firmware><Channel>2</Channel>"
                     "</Response>",
                     last_sn(h));
    assert_int_equal(gbh_message(h, DEV, body, (size_t)n, 5080), 200);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.body, "device_name")), "门口");
    assert_int_equal(json_integer_value(json_object_get(r.body, "channel")), 2);
    json_decref(r.body);
    json_t *dj = gb_device_json(h->g, gb_device_find(h->g, DEV), true);
    assert_string_equal(json_string_value(json_object_get(json_object_get(dj, "info"), "firmware")), "1.0");
    json_decref(dj);
    /* Not XML, a DOCTYPE, no CmdType: 400 each. */
    const char *bad[] = {"not xml at all", "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"x\">]><Notify/>",
                         "<?xml version=\"1.0\"?><Notify><SN>1</SN></Notify>"};
    for (size_t i = 0; i < 3; i++) assert_int_equal(gbh_message(h, DEV, bad[i], strlen(bad[i]), 5080), 400);
    /* A MESSAGE that is not MANSCDP is not ours (the core answers). */
    assert_true(online(h, DEV));
}

static void test_catalog_on_register(void **state)
{
    struct gbh *h = *state; /* catalog_on_register */
    uint64_t before = h->nsent;
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    assert_true(online(h, DEV));
    /* 401, 200, then (from the catalog queue, on the next timer run) the
     * Query/Catalog MESSAGE to where the device registered from, and its
     * DeviceInfo (no name is known for it yet). */
    assert_int_equal(h->nsent, before + 2);
    gbh_advance(h, 0);
    assert_int_equal(h->nsent, before + 4);
    const char *catq = h->sent[(h->nsent - 2) % GBH_KEEP];
    assert_non_null(strstr(catq, "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    assert_non_null(strstr(catq, "<CmdType>Catalog</CmdType>"));
    assert_non_null(strstr(catq, "From: <sip:34020000002000000001@3402000000>;tag="));
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    assert_non_null(strstr(gbh_last(h), "<CmdType>DeviceInfo</CmdType>"));
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.pending_queries, 2);
    /* A refresh while online sends no new query. */
    gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 200);
}

/* DEV and a second device register; the queue's timer has run once. Returns
 * the second device's id. */
static const char *register_two(struct gbh *h)
{
    static const char dev2[] = "34020000001320000077";
    assert_int_equal(gb_device_admin_set(h->g, dev2, "devpw", NULL, -1), 0);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_int_equal(gbh_register(h, dev2, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5081), 200);
    gbh_advance(h, 0);
    return dev2;
}

/* Catalog-on-register goes through a bounded queue: with
 * catalog_concurrency = 1 the second device waits until the first one's
 * query ends (here by timing out), then gets its own. */
static void test_catalog_queue_is_bounded(void **state)
{
    struct gbh *h = *state; /* catalog_on_register, catalog_concurrency 1 */
    const char *dev2 = register_two(h);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.pending_queries, 1);
    assert_int_equal(st.catalog_in_flight, 1);
    assert_int_equal(st.catalog_queued, 1);
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    gbh_advance(h, GB_QUERY_TIMEOUT_MS + 1);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_queued, 0);
    assert_int_equal(st.catalog_in_flight, 1);
    assert_int_equal(st.pending_queries, 1);
    assert_non_null(gb_device_find(h->g, dev2)->queries);
    assert_null(gb_device_find(h->g, DEV)->queries);
}

/* The DeviceInfo query asked on register counts in flight too, one slot
 * per query: with catalog_concurrency = 2 a device asked both fills the
 * slots, and the next one (that needs two as well) waits until both are
 * free, not just one. */
static void test_catalog_queue_counts_device_info(void **state)
{
    struct gbh *h = *state; /* catalog_on_register, info_on_register, catalog_concurrency 2 */
    const char *dev2 = register_two(h);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_in_flight, 2);
    assert_int_equal(st.pending_queries, 2);
    assert_int_equal(st.catalog_queued, 1);
    assert_null(gb_device_find(h->g, dev2)->queries);
    /* DEV answers its DeviceInfo: one slot frees, too few for dev2. */
    assert_non_null(strstr(gbh_last(h), "<CmdType>DeviceInfo</CmdType>"));
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><CmdType>DeviceInfo</CmdType><SN>%u</SN>"
                     "<DeviceID>" DEV "</DeviceID><Result>OK</Result><DeviceName>gate</DeviceName></Response>",
                     last_sn(h));
    assert_int_equal(gbh_message(h, DEV, body, (size_t)n, 5080), 200);
    gbh_advance(h, 0);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_in_flight, 1);
    assert_int_equal(st.catalog_queued, 1);
    assert_null(gb_device_find(h->g, dev2)->queries);
    /* DEV's catalog query ends (timed out): dev2 gets its two queries. */
    gbh_advance(h, GB_QUERY_TIMEOUT_MS + 1);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_queued, 0);
    assert_int_equal(st.catalog_in_flight, 2);
    assert_int_equal(st.pending_queries, 2);
    assert_null(gb_device_find(h->g, DEV)->queries);
    assert_non_null(strstr(gbh_last(h), "<CmdType>DeviceInfo</CmdType>"));
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:34020000001320000077@192.0.2.9:5081 SIP/2.0"));
    /* Both end: nothing in flight is left counted. */
    gbh_advance(h, GB_QUERY_TIMEOUT_MS + 1);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_in_flight, 0);
    assert_int_equal(st.pending_queries, 0);
}

/* With one slot a device asked both still gets both (nothing else is in
 * flight): a limit of 1 never stalls the queue. */
static void test_catalog_queue_one_slot_still_asks_info(void **state)
{
    struct gbh *h = *state; /* catalog_concurrency 1, info_on_register turned on below */
    h->g->cfg.info_on_register = true;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    gbh_advance(h, 0);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_in_flight, 2);
    assert_int_equal(st.catalog_queued, 0);
    assert_non_null(strstr(gbh_last(h), "<CmdType>DeviceInfo</CmdType>"));
}

/* Fields that channels repeat are kept once (interned); id, name and parent
 * share one block; everything goes back when the channels go. */
static void test_channel_strings_shared(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    uint32_t before = gb_strpool_count(h->g->strings);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    uint32_t sn = last_sn(h);
    gb_catalog_item_t it[3];
    const char *ids[3] = {"34020000001310000001", "34020000001310000002", "34020000001310000003"};
    for (int i = 0; i < 3; i++) {
        item(&it[i], ids[i], "摄像机", DEV, NULL);
        it[i].manufacturer = (char *)"Hikvision";
        it[i].model = (char *)"DS-2CD";
        it[i].civil_code = (char *)"340200";
        it[i].owner = (char *)"Owner";
    }
    it[2].model = (char *)"DS-3CD";
    assert_int_equal(send_part(h, sn, it, 3, 0, 3, 3), 200);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    struct gb_device *d = gb_device_find(h->g, DEV);
    assert_int_equal(d->channel_count, 3);
    const struct gb_channel *c = d->channels;
    assert_string_equal(c[0].manufacturer, "Hikvision");
    assert_ptr_equal(c[0].manufacturer, c[1].manufacturer);
    assert_ptr_equal(c[0].manufacturer, c[2].manufacturer);
    assert_ptr_equal(c[0].model, c[1].model);
    assert_string_equal(c[2].model, "DS-3CD");
    assert_ptr_equal(c[0].civil_code, c[2].civil_code);
    assert_ptr_equal(c[0].extra_json, c[2].extra_json);
    assert_non_null(strstr(c[0].extra_json, "\"owner\":\"Owner\""));
    /* Hikvision, DS-2CD, DS-3CD, 340200, the extra JSON. */
    assert_int_equal(gb_strpool_count(h->g->strings), before + 5);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(c[i].name, "摄像机");
        assert_ptr_equal(c[i].name, c[i].id + strlen(c[i].id) + 1);
        assert_string_equal(c[i].parent_id, DEV);
    }
    /* The JSON of a channel reads the shared fields. */
    json_t *j = gb_channel_json(&c[1]);
    assert_string_equal(json_string_value(json_object_get(j, "manufacturer")), "Hikvision");
    json_decref(j);

    /* Delete all three: the pool is back where it was. */
    for (int i = 0; i < 3; i++) it[i].event = GB_EVENT_DEL;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_notify(&b, GB_CHARSET_UTF8, 100, DEV, it, 3), 0);
    assert_int_equal(gbh_message(h, DEV, b.data, b.len, 5080), 200);
    sbuf_free(&b);
    assert_int_equal(d->channel_count, 0);
    assert_int_equal(gb_strpool_count(h->g->strings), before);
}

/* ---- hostile input (issue 9) ---- */

/* Catalog items whose ids are not GB ids never become channels: counted,
 * logged, and they count towards SumNum (the answer still completes). A
 * catalog Notify is held to the same rule. */
static void test_catalog_bad_ids_dropped(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    gb_catalog_item_t items[6];
    item(&items[0], "34020000001310000001", "good", DEV, NULL);
    item(&items[1], "../../etc/passwd", "path", NULL, NULL);
    item(&items[2], "<script>alert(1)</script>", "markup", NULL, NULL);
    item(&items[3], "3402000000131000000", "19 digits", NULL, NULL);
    item(&items[4], "34020000001310000005", "bad parent", "../34020000001320000001", NULL);
    item(&items[5], "34020000001310000006", "civil-code parent and a path", "340200/34020000002160000001", NULL);
    assert_int_equal(send_part(h, last_sn(h), items, 6, 0, 6, 6), 200);
    assert_int_equal(r.status, 200); /* complete: 2 kept + 4 dropped = SumNum */
    json_decref(r.body);
    struct gb_device *d = gb_device_find(h->g, DEV);
    assert_int_equal(d->channel_count, 2);
    for (size_t i = 0; i < d->channel_count; i++)
        assert_true(!strcmp(d->channels[i].id, "34020000001310000001") || !strcmp(d->channels[i].id, "34020000001310000006"));
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_items_dropped, 4);
    /* Notify (ADD) with a bad id: dropped too. */
    const char *notify = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Notify><CmdType>Catalog</CmdType><SN>9</SN>"
                         "<DeviceID>" DEV "</DeviceID><SumNum>1</SumNum><DeviceList Num=\"1\"><Item>"
                         "<DeviceID>&lt;img src=x&gt;</DeviceID><Name>x</Name><Event>ADD</Event></Item>"
                         "</DeviceList></Notify>";
    assert_int_equal(gbh_message(h, DEV, notify, strlen(notify), 5080), 200);
    assert_int_equal(d->channel_count, 2);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_items_dropped, 5);
}

/* A registered device's MESSAGEs are taken only from where it registered:
 * another port, or another TCP connection, gets 403 and changes nothing. A
 * keepalive naming another DeviceID gets 400. */
static void test_messages_only_from_the_registered_flow(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct gb_device *d = gb_device_find(h->g, DEV);
    gbh_advance(h, 60000);
    int64_t last = d->last_keepalive;
    assert_int_equal(gbh_keepalive(h, DEV, 6666), 403);
    assert_int_equal(d->last_keepalive, last);
    assert_null(strstr(gbh_last(h), "To: <sip:34020000002000000001@3402000000>\r\n")); /* tagged */
    /* Keepalives from the flow keep it online; forged ones do not. */
    for (int i = 0; i < 4; i++) {
        gbh_advance(h, 60000);
        assert_int_equal(gbh_keepalive(h, DEV, 6666), 403);
    }
    assert_false(online(h, DEV)); /* 3 x 60 s without a keepalive of its own */
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_int_equal(gbh_keepalive(h, DEV, 5080), 200);
    /* DeviceID in the body is not the sender. */
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>"
                     "<DeviceID>34020000001320000002</DeviceID><Status>OK</Status></Notify>");
    assert_int_equal(gbh_message(h, DEV, body, (size_t)n, 5080), 400);
    /* A catalog pushed from elsewhere does not replace the channels. */
    gb_catalog_item_t it;
    item(&it, "34020000001310000666", "forged", NULL, NULL);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_manscdp_build_catalog_response(&b, GB_CHARSET_GB2312, 5, DEV, &it, 1, 0, 1), 0);
    assert_int_equal(gbh_message(h, DEV, b.data, b.len, 6666), 403);
    sbuf_free(&b);
    gbh_advance(h, GB_QUERY_TIMEOUT_MS + 1);
    assert_int_equal(d->channel_count, 0);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.foreign_messages, 3); /* at 60 s and 120 s, and the catalog (offline ones: the usual 403) */
    /* Over TCP: the connection it registered over, no other. */
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_TCP, 41, 40000), 200);
    assert_int_equal(gbh_keepalive(h, DEV, 40000), 403); /* UDP from the same address: not its flow */
}

/* A REGISTER answering with the nonce of the device's last registration,
 * from another address, is a replay: 401 with a fresh nonce, the device stays. */
static void test_register_nonce_replay(void **state)
{
    struct gbh *h = *state;
    gbh_send_register(h, DEV, 3600, NULL, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 401);
    const char *w = strstr(gbh_last(h), "WWW-Authenticate: ") + 18;
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(str_make(w, (size_t)(strstr(w, "\r\n") - w)), &ch), 0);
    char nonce[128];
    str_copy(nonce, sizeof(nonce), ch.nonce);
    sbuf_t ans;
    sbuf_init(&ans);
    auth_client_answer(&ch, str_from_cstr(DEV), STR_LIT("devpw"), STR_LIT("REGISTER"),
                       STR_LIT("sip:34020000002000000001@3402000000"), 1, STR_NULL, &ans);
    sbuf_append_char(&ans, '\0');
    gbh_send_register(h, DEV, 3600, ans.data, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 200);
    /* The same Authorization from another port. */
    gbh_send_register(h, DEV, 3600, ans.data, SIP_TRANSPORT_UDP, 0, 7777);
    assert_int_equal(gbh_last_status(h), 401);
    assert_non_null(strstr(gbh_last(h), "nonce=\""));
    assert_null(strstr(gbh_last(h), nonce));
    struct gb_device *d = gb_device_find(h->g, DEV);
    assert_int_equal(ntohs(d->addr.in.sin_port), 5080);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.nonce_replays, 1);
    /* The device itself may refresh with it from where it is. */
    gbh_send_register(h, DEV, 3600, ans.data, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 200);
    /* A fresh digest from a new address moves it (NAT rebinding). */
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 7777), 200);
    assert_int_equal(ntohs(d->addr.in.sin_port), 7777);
    sbuf_free(&ans);
}

/* ---- the service API (upper.h): what the HTTP routes use, by id ---- */

/* A device id the role does not know: no JSON, every command -ENOENT (the
 * routes answer 404), and nothing goes on the wire. */
static void test_service_unknown_device(void **state)
{
    struct gbh *h = *state;
    const char *other = "34020000001320000099";
    uint64_t sent = h->nsent;
    struct result r = {.wt.done = on_done};
    assert_false(gb_upper_has_device(h->g, other));
    assert_null(gb_upper_device_json(h->g, other));
    assert_null(gb_upper_channels_json(h->g, other));
    assert_int_equal(gb_upper_query(h->g, other, GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), -ENOENT);
    assert_int_equal(gb_upper_ptz(h->g, other, other, "left", 128, &r.wt), -ENOENT);
    assert_int_equal(gb_upper_play(h->g, other, other, false, false, 0, 0, &r.wt), -ENOENT);
    assert_int_equal(h->nsent, sent);
    assert_int_equal(r.status, 0);
}

/* The full record of a registered device, as GET /api/v1/gb/devices/{id} shows it. */
static void test_service_device_json(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_true(gb_upper_has_device(h->g, DEV));
    json_t *o = gb_upper_device_json(h->g, DEV);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), DEV);
    assert_true(json_is_true(json_object_get(o, "online")));
    assert_string_equal(json_string_value(json_object_get(o, "remote")), "192.0.2.9:5080");
    assert_string_equal(json_string_value(json_object_get(o, "contact")), "sip:" DEV "@192.0.2.9:5080");
    json_decref(o);
    json_t *tree = gb_upper_channels_json(h->g, DEV);
    assert_non_null(tree);
    json_decref(tree);
}

/* Node death (registrar/cluster.c): the role's answers to a survivor's
 * reap of a dead node's devices. With a device mirror (toward 127.0.0.1:1,
 * its loop never run: the writes only queue) and an event bus: the
 * registration time of a device online here, 0 for others; kept() writes
 * the record again (HSET, PEXPIRE, SADD queued); lost() for a device not
 * here publishes one gb.device.offline node-lost naming the dead node
 * (lost_node; "node" in the stream is the writer's); for a
 * device online here (a stale state) takes it offline here with exactly
 * that one event. */
struct ev_log {
    int n;
    char last[512];
};

static void on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    struct ev_log *l = arg;
    if (!strstr(json, "\"gb.device.offline\"")) return;
    l->n++;
    snprintf(l->last, sizeof(l->last), "%.*s", (int)len, json);
}

/* The role's text of a node-lost offline (its bus) is the one the reap
 * script writes into the stream (cluster_node_lost_event's fields), byte
 * for byte but the time. */
static void same_as_reap_body(const char *text, const char *id)
{
    struct event_field f[CLUSTER_LOST_FIELDS];
    const char *type;
    size_t n = cluster_node_lost_event(true, id, "", "node-a", NULL, 0, f, &type);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(event_format_fields_body(&b, type, f, n), 0);
    long off = events_stream_body_offset(text, strlen(text));
    assert_true(off > 0);
    assert_int_equal(strlen(text + off), b.len);
    assert_memory_equal(text + off, b.data, 8);                              /* "time":" */
    assert_string_equal(text + off + 8 + 24, b.data + 8 + 24);               /* after the time */
    sbuf_free(&b);
}

/* The event as node-b's stream writer puts it into the cluster's stream
 * (its bus text after the {"seq":N, head, under the writer's head), read as
 * a strict reader would: no member twice; "node" is the writer. */
static json_t *as_stream_entry(const char *text)
{
    long off = events_stream_body_offset(text, strlen(text));
    assert_true(off > 0);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(events_stream_entry_text(&b, 9, "\"node-b\"", text + off, strlen(text) - (size_t)off), 0);
    json_error_t err;
    json_t *e = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!e) fail_msg("%s: %s", b.data, err.text);
    assert_string_equal(json_string_value(json_object_get(e, "node")), "node-b");
    sbuf_free(&b);
    return e;
}

static void test_node_lost_hooks(void **state)
{
    struct gbh *h = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct redis_config rc = {.timeout_ms = 500, .max_pending = 100, .gb_keepalive_write_s = 60};
    snprintf(rc.nodes, sizeof(rc.nodes), "127.0.0.1:1");
    snprintf(rc.key_prefix, sizeof(rc.key_prefix), "t:");
    int err = 0;
    struct gb_devmirror *m = gb_devmirror_new(&loop, &h->ua_w.timers, &rc, "node-b", &err);
    assert_non_null(m);
    gb_devmirror_set_incarnation(m, "r1");
    struct event_bus *bus = event_bus_new(&loop, 64, NULL);
    assert_non_null(bus);
    struct ev_log evs = {0};
    assert_int_equal(event_subscribe(bus, on_event, &evs), 0);

    struct cluster_gb_hooks hk;
    gb_upper_gb_hooks(h->g, &hk);
    assert_null(hk.lost); /* no device mirror: no hooks */
    h->g->devmirror = m;
    h->g->events = bus;
    gb_upper_gb_hooks(h->g, &hk);
    assert_non_null(hk.local_registered);
    assert_non_null(hk.lost);
    assert_non_null(hk.kept);

    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct gb_device *d = gb_device_find(h->g, DEV);
    assert_non_null(d);
    assert_true(hk.local_registered(hk.arg, DEV) > 0);
    assert_int_equal(hk.local_registered(hk.arg, DEV), d->registered_at);
    const char *other = "34020000001320000099";
    assert_int_equal(hk.local_registered(hk.arg, other), 0);

    struct gb_devmirror_stats st0, st1;
    gb_devmirror_get_stats(m, &st0);
    hk.kept(hk.arg, DEV);
    gb_devmirror_get_stats(m, &st1);
    assert_int_equal(st1.pending, st0.pending + 3); /* HSET, PEXPIRE, SADD */
    assert_true(gb_device_online(d));
    assert_int_equal(evs.n, 0);

    hk.lost(hk.arg, other, "node-a");
    assert_int_equal(evs.n, 1);
    same_as_reap_body(evs.last, other);
    json_t *e = as_stream_entry(evs.last);
    assert_string_equal(json_string_value(json_object_get(e, "device_id")), other);
    assert_string_equal(json_string_value(json_object_get(e, "reason")), "node-lost");
    assert_string_equal(json_string_value(json_object_get(e, "lost_node")), "node-a");
    json_decref(e);

    hk.lost(hk.arg, DEV, "node-a");
    assert_false(gb_device_online(d));
    assert_int_equal(evs.n, 2); /* one, from the role's own offline path */
    same_as_reap_body(evs.last, DEV);
    e = as_stream_entry(evs.last);
    assert_string_equal(json_string_value(json_object_get(e, "device_id")), DEV);
    assert_string_equal(json_string_value(json_object_get(e, "reason")), "node-lost");
    assert_string_equal(json_string_value(json_object_get(e, "lost_node")), "node-a");
    json_decref(e);
    assert_int_equal(hk.local_registered(hk.arg, DEV), 0);
    gb_devmirror_get_stats(m, &st0);
    hk.kept(hk.arg, DEV); /* offline here now: nothing written */
    gb_devmirror_get_stats(m, &st1);
    assert_int_equal(st1.pending, st0.pending);
    assert_false(gb_device_online(d));

    h->g->devmirror = NULL;
    h->g->events = NULL;
    gb_devmirror_free(m);
    event_unsubscribe(bus, on_event, &evs);
    event_bus_free(bus);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A query by device id goes out as a MANSCDP MESSAGE to where the device
 * registered from (GB/T 28181 §9.5); the waiter gets the device's answer. */
static void test_service_query_by_id(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_upper_query(h->g, DEV, GB_Q_INFO, NULL, NULL, NULL, &r.wt), 0);
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
    assert_non_null(strstr(gbh_last(h), "<CmdType>DeviceInfo</CmdType>"));
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\"?>\r\n<Response>\r\n<CmdType>DeviceInfo</CmdType>\r\n<SN>%u</SN>\r\n"
                     "<DeviceID>%s</DeviceID>\r\n<Result>OK</Result>\r\n<Manufacturer>Acme</Manufacturer>\r\n"
                     "</Response>\r\n",
                     last_sn(h), DEV);
    assert_int_equal(gbh_message(h, DEV, body, (size_t)n, 5080), 200);
    assert_int_equal(r.status, 200);
    assert_non_null(r.body);
    json_decref(r.body);
}

static size_t listed(struct gb_upper *g, const char *q)
{
    json_t *o = gb_devices_json_match(g, q);
    size_t n = json_array_size(json_object_get(o, "devices"));
    json_decref(o);
    return n;
}

/* The device's name comes from its DeviceInfo answer (in its own script):
 * the list shows it, and ?q= finds the device by a part of its id or of
 * its name, ASCII letters in any case. */
static void test_service_device_name_and_search(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    json_t *o = gb_upper_device_json(h->g, DEV);
    assert_true(json_is_null(json_object_get(o, "name"))); /* no DeviceInfo yet */
    json_decref(o);
    assert_int_equal(listed(h->g, "gate"), 0);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_upper_query(h->g, DEV, GB_Q_INFO, NULL, NULL, NULL, &r.wt), 0);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\"?>\r\n<Response>\r\n<CmdType>DeviceInfo</CmdType>\r\n<SN>%u</SN>\r\n"
                     "<DeviceID>%s</DeviceID>\r\n<DeviceName>Gate Cam 东门</DeviceName>\r\n<Result>OK</Result>\r\n"
                     "<Manufacturer>Acme</Manufacturer>\r\n</Response>\r\n",
                     last_sn(h), DEV);
    assert_int_equal(gbh_message(h, DEV, body, (size_t)n, 5080), 200);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    o = gb_devices_json(h->g);
    json_t *d = json_array_get(json_object_get(o, "devices"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "Gate Cam 东门");
    assert_string_equal(json_string_value(json_object_get(d, "manufacturer")), "Acme");
    assert_true(json_is_null(json_object_get(d, "model")));
    json_decref(o);
    assert_int_equal(listed(h->g, NULL), 1);
    assert_int_equal(listed(h->g, ""), 1);
    assert_int_equal(listed(h->g, "gATE cAM"), 1);
    assert_int_equal(listed(h->g, "东门"), 1);
    assert_int_equal(listed(h->g, "1320000001"), 1);
    assert_int_equal(listed(h->g, "Acme"), 0);   /* the manufacturer is not searched */
    assert_int_equal(listed(h->g, "西门"), 0);
}

/* Without a loop the role has no media sockets: play is refused -ENOTSUP
 * (the route answers 500) and no INVITE is sent. */
static void test_service_play_without_loop(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    uint64_t sent = h->nsent;
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_upper_play(h->g, DEV, "34020000001310000001", false, false, 0, 0, &r.wt), -ENOTSUP);
    assert_int_equal(h->nsent, sent);
}

/* A stream id nobody holds: no JSON, stop says -ENOENT (404); the list
 * is {"streams": []}. */
static void test_service_unknown_stream(void **state)
{
    struct gbh *h = *state;
    assert_null(gb_upper_stream_json(h->g, "0340200001"));
    assert_int_equal(gb_upper_stream_stop(h->g, "0340200001", "api"), -ENOENT);
    json_t *all = gb_upper_streams_json(h->g);
    assert_true(json_is_array(json_object_get(all, "streams")));
    assert_int_equal(json_array_size(json_object_get(all, "streams")), 0);
    json_decref(all);
}

/* ---- admission (overload) ---- */

/* Refuses while on, answering 503 itself as the admission contract says (txn.h). */
struct gate {
    bool on;
    bool busy; /* what busy() says (background work waits) */
    unsigned asked;
};

static bool gate_refuse(void *arg, struct txn *st)
{
    struct gate *gt = arg;
    gt->asked++;
    if (!gt->on) return false;
    txn_respond_stateless(st, 503, "Service Unavailable", STR_LIT("gate"), NULL, 0, STR_NULL, STR_NULL);
    return true;
}

static struct gate gate;
static struct txn_admission gate_admission = {.refuse = gate_refuse, .arg = &gate};

static int setup_gate(void **state)
{
    memset(&gate, 0, sizeof(gate));
    struct gbh *h = malloc(sizeof(*h));
    gbh_init(h);
    h->admission = &gate_admission;
    assert_int_equal(gbh_start(h), 0);
    assert_int_equal(gb_device_admin_set(h->g, DEV, "devpw", NULL, -1), 0);
    *state = h;
    return 0;
}

/* A REGISTER that would bring a device online is put to the admission
 * before any digest work: refused, it gets the 503 only (no 401) and the
 * device stays offline. */
static void test_admission_refuses_new_registration(void **state)
{
    struct gbh *h = *state;
    gate.on = true;
    gbh_send_register(h, DEV, 3600, NULL, SIP_TRANSPORT_UDP, 0, 5080);
    assert_int_equal(gbh_last_status(h), 503);
    assert_int_equal(gate.asked, 1);
    assert_false(online(h, DEV));
    gate.on = false;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_true(online(h, DEV));
}

/* A device already online refreshes and unregisters without being asked
 * about: overload sheds new work, not the registrations it already holds. */
static void test_admission_spares_online_devices(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    unsigned asked = gate.asked;
    gate.on = true;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_true(online(h, DEV));
    assert_int_equal(gbh_register(h, DEV, "devpw", 0, SIP_TRANSPORT_UDP, 0, 5080), 200);
    assert_false(online(h, DEV));
    assert_int_equal(gate.asked, asked);
}

/* Catalog queries on register are background work: while the node says it
 * is busy (overload) none starts; they start when it is not. */
static bool gate_busy(void *arg) { return ((struct gate *)arg)->busy; }
static struct txn_admission busy_admission = {.refuse = gate_refuse, .busy = gate_busy, .arg = &gate};

static int setup_busy_gate(void **state)
{
    memset(&gate, 0, sizeof(gate));
    struct gbh *h = malloc(sizeof(*h));
    gbh_init(h);
    h->admission = &busy_admission;
    h->cfg.gb.catalog_on_register = true;
    h->cfg.gb.info_on_register = false;
    assert_int_equal(gbh_start(h), 0);
    assert_int_equal(gb_device_admin_set(h->g, DEV, "devpw", NULL, -1), 0);
    *state = h;
    return 0;
}

static void test_catalog_queue_waits_while_busy(void **state)
{
    struct gbh *h = *state;
    gate.busy = true;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    gbh_advance(h, 2000);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_queued, 1);
    assert_int_equal(st.catalog_in_flight, 0);
    assert_int_equal(st.pending_queries, 0);
    assert_true(st.catalog_paused >= 2);
    assert_null(strstr(gbh_last(h), "MESSAGE sip:"));
    gate.busy = false;
    gbh_advance(h, 1000);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_queued, 0);
    assert_int_equal(st.catalog_in_flight, 1);
    assert_int_equal(st.catalog_started, 1);
    assert_non_null(strstr(gbh_last(h), "MESSAGE sip:" DEV "@192.0.2.9:5080 SIP/2.0"));
}

/* [gb] catalog_rate: at most that many queries start a second (one second
 * may be banked), however many slots are free. */
static void catalog_two_a_second(struct gb_config *gb)
{
    gb->catalog_on_register = true;
    gb->info_on_register = false;
    gb->catalog_concurrency = 100;
    gb->catalog_rate = 2;
}
static int setup_catalog_two_a_second(void **state) { return setup_with(state, catalog_two_a_second); }

static void test_catalog_queue_rate(void **state)
{
    struct gbh *h = *state;
    char id[8][21];
    for (int i = 0; i < 8; i++) {
        snprintf(id[i], sizeof(id[i]), "340200000013200001%02d", i);
        assert_int_equal(gb_device_admin_set(h->g, id[i], "devpw", NULL, -1), 0);
        assert_int_equal(gbh_register(h, id[i], "devpw", 3600, SIP_TRANSPORT_UDP, 0, (uint16_t)(5100 + i)), 200);
    }
    gbh_advance(h, 0);
    struct gb_upper_stats st;
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_started, 2); /* the banked second */
    gbh_advance(h, 499);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_started, 2);
    gbh_advance(h, 1);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_started, 3);
    gbh_advance(h, 1500);
    gb_upper_get_stats(h->g, &st);
    assert_int_equal(st.catalog_started, 6);
    assert_int_equal(st.catalog_queued, 2);
}

/* ---- devices as handles (upper.h: what the middle node reads) ---- */

/* A registered device found by id reads back what it registered with; other
 * ids (unknown, not 20 digits) find nothing. */
static void test_handle_reads_a_registered_device(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct gb_device *d = gb_device_find_str(h->g, STR_LIT(DEV));
    assert_non_null(d);
    assert_ptr_equal(gb_device_find(h->g, DEV), d);
    assert_string_equal(gb_device_id(d), DEV);
    assert_true(gb_device_online(d));
    assert_int_equal(gb_device_charset(d), GB_CHARSET_GB2312);
    assert_null(gb_device_info_str(d, "device_name")); /* no DeviceInfo answer yet */
    assert_int_equal(gb_device_channel_count(d), 0);
    assert_null(gb_device_find(h->g, "34020000001320000099"));
    assert_null(gb_device_find_str(h->g, STR_LIT("3402000000132000000")));
    assert_null(gb_device_find(h->g, NULL));
}

/* The channels of the device's catalog read back as views, slot by slot
 * (GB/T 28181 §A.2.4.4 items: id, name, parent, status). */
static void test_handle_channel_views(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct gb_device *d = gb_device_find(h->g, DEV);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, d, GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    gb_catalog_item_t it[2];
    item(&it[0], "34020000001310000001", "大门", DEV, NULL);
    item(&it[1], "34020000001310000002", "后门", DEV, NULL);
    it[1].status = GB_ONOFF_OFF;
    assert_int_equal(send_part(h, last_sn(h), it, 2, 0, 2, 2), 200);
    assert_int_equal(r.status, 200);
    json_decref(r.body);

    assert_int_equal(gb_device_channel_count(d), 2);
    struct gb_channel_view v[2];
    assert_true(gb_device_channel(d, 0, &v[0]));
    assert_true(gb_device_channel(d, 1, &v[1]));
    /* Slot order is the role's; find each by id. */
    if (strcmp(v[0].id, "34020000001310000001")) {
        struct gb_channel_view t = v[0];
        v[0] = v[1];
        v[1] = t;
    }
    assert_string_equal(v[0].id, "34020000001310000001");
    assert_string_equal(v[0].name, "大门");
    assert_string_equal(v[0].parent_id, DEV);
    assert_string_equal(v[0].status, "ON");
    assert_string_equal(v[1].id, "34020000001310000002");
    assert_string_equal(v[1].status, "OFF");
    assert_false(gb_device_channel(d, 2, &v[0]));
}

static void count_one(struct gb_device *d, void *arg)
{
    (void)d;
    (*(int *)arg)++;
}

/* foreach visits every device record, registered or only configured. */
static void test_foreach_visits_every_device(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gb_device_admin_set(h->g, "34020000001320000002", "pw2", NULL, -1), 0);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    int n = 0;
    gb_device_foreach(h->g, count_one, &n);
    assert_int_equal(n, 2);
    assert_int_equal(gb_device_admin_delete(h->g, "34020000001320000002"), 0);
    n = 0;
    gb_device_foreach(h->g, count_one, &n);
    assert_int_equal(n, 1);
}

/* A request sent to a device goes to where it registered from, R-URI its
 * Contact address with the target's id, From us, To the target (GB/T 28181
 * §9.3.2: out-of-dialog MESSAGE to a device); the caller's method, body and
 * content type are kept. */
static void test_device_send_addresses_the_device(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct gb_device *d = gb_device_find(h->g, DEV);
    struct ua_request r = {0};
    r.method = SIP_MESSAGE;
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = STR_LIT("<Control/>");
    uint64_t sent = h->nsent;
    assert_non_null(gb_device_send(h->g, d, "34020000001310000001", &r, NULL, NULL));
    assert_int_equal(h->nsent, sent + 1);
    const char *m = gbh_last(h);
    assert_non_null(strstr(m, "MESSAGE sip:34020000001310000001@192.0.2.9:5080 SIP/2.0\r\n"));
    assert_non_null(strstr(m, "From: <sip:34020000002000000001@3402000000>;tag="));
    assert_non_null(strstr(m, "To: <sip:34020000001310000001@3402000000>\r\n"));
    assert_non_null(strstr(m, "Content-Type: Application/MANSCDP+xml\r\n"));
    assert_non_null(strstr(m, "\r\n\r\n<Control/>"));
}

/* A device that registered over TCP and then again over UDP is no longer
 * tied to its old connection: losing that connection leaves it online. */
static void test_conn_loss_spares_a_device_gone_udp(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_TCP, 7, 5080), 200);
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    gb_upper_on_conn_lost(h->g, 7);
    assert_true(gb_device_online(gb_device_find(h->g, DEV)));
}

/* A catalog longer than the assembly's first slots, every part sent twice
 * (UDP duplicates): the repeats replace, never add (GB/T 28181 §A.2.6: SumNum
 * counts distinct items). */
static void test_catalog_repeats_across_growth(void **state)
{
    struct gbh *h = *state;
    assert_int_equal(gbh_register(h, DEV, "devpw", 3600, SIP_TRANSPORT_UDP, 0, 5080), 200);
    struct result r = {.wt.done = on_done};
    assert_int_equal(gb_query_start(h->g, gb_device_find(h->g, DEV), GB_Q_CATALOG, NULL, NULL, NULL, &r.wt), 0);
    uint32_t sn = last_sn(h);
    enum { N = 100 };
    gb_catalog_item_t it[N];
    char ids[N][21];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "3402000000131%07d", i + 1);
        item(&it[i], ids[i], ids[i], DEV, NULL);
    }
    for (size_t from = 0; from < N; from += 4) {
        assert_int_equal(send_part(h, sn, it, N, from, 4, N), 200);
        if (from + 4 < N) assert_int_equal(send_part(h, sn, it, N, from, 4, N), 200);
    }
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "channels")), N);
    json_decref(r.body);
    assert_int_equal(gb_device_channel_count(gb_device_find(h->g, DEV)), N);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_unknown_and_qop, setup_allow_unknown_qop, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_tcp_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_assembly_and_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_timeout_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_and_bad_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_queue_is_bounded, setup_catalog_one_slot, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_queue_counts_device_info, setup_catalog_two_slots, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_queue_one_slot_still_asks_info, setup_catalog_one_slot, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_on_register, setup_catalog_on_register, teardown),
        cmocka_unit_test_setup_teardown(test_channel_strings_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_bad_ids_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_only_from_the_registered_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_nonce_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_unknown_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_device_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_lost_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_query_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_device_name_and_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_play_without_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_unknown_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admission_refuses_new_registration, setup_gate, teardown),
        cmocka_unit_test_setup_teardown(test_admission_spares_online_devices, setup_gate, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_queue_waits_while_busy, setup_busy_gate, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_queue_rate, setup_catalog_two_a_second, teardown),
        cmocka_unit_test_setup_teardown(test_handle_reads_a_registered_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handle_channel_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_visits_every_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_send_addresses_the_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_loss_spares_a_device_gone_udp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_repeats_across_growth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
