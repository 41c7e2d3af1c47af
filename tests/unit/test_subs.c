/* test_subs.c — the RFC 6665 notifier and the reg package (RFC 3680) as
 * specified, on the in-process stack (harness.h) with the real registrar and
 * location service (no store): SUBSCRIBEs given as SIP text from
 * 192.0.2.9:5080, answers and NOTIFYs read back from what was sent, NOTIFY
 * bodies parsed with libxml2 and checked by XPath.
 *
 * Our domain is example.com; users alice and bob. [subscriptions] defaults
 * (min 60 s, max 7200 s) unless a test changes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "registrar/digest_check.h"
#include "base/arena.h"
#include "subs/dialog_info.h"
#include "subs/dialog_mirror.h"
#include "subs/dialog_nodes.h"
#include "subs/mwi.h"
#include "subs/presence.h"
#include "subs/presence_mirror.h"
#include "store/store.h"
#include "base/clock.h"
#include "subs/reg_nodes.h"
#include "subs/reginfo.h"
#include "subs/subs.h"
#include "subs/winfo.h"
#include "subs_fixture.h"

/* ---- reginfo documents, read back with libxml2 (subs_fixture.h) ---- */

static void doc_open(struct doc *doc, const char *text, size_t len)
{
    doc_open_ns(doc, text, len, "reginfo.xml", "r", "urn:ietf:params:xml:ns:reginfo");
}

static void test_reginfo_full_parses_back(void **state)
{
    (void)state;
    struct reginfo_contact c[2] = {
        {.uri = "sip:alice@192.0.2.7:5062;x=\"a&b<c\"", .state = "active", .event = "registered", .expires = 3600,
         .q1000 = 500, .call_id = "c1@h", .cseq = 7},
        {.uri = "sip:alice@192.0.2.8", .state = "active", .event = "registered", .expires = 10, .q1000 = 1000},
    };
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(reginfo_build(&b, 4, true, "sip:alice@example.com", "active", c, 2), 0);
    struct doc d;
    doc_open(&d, b.data, b.len);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "4");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@aor"), "sip:alice@example.com");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    assert_true(xn(&d, "count(/r:reginfo/r:registration/r:contact)") == 2);
    /* The special characters come back as they were (escaped on the way). */
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[1]/r:uri"), c[0].uri);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[1]/@q"), "0.500");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[1]/@expires"), "3600");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[1]/@callid"), "c1@h");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[1]/@cseq"), "7");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[2]/@q"), ""); /* 1.0 is the default */
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact[2]/@event"), "registered");
    /* Ids are stable per contact and differ between contacts. */
    char id1[512]; /* what xs() may return */
    snprintf(id1, sizeof(id1), "%s", xs(&d, "/r:reginfo/r:registration/r:contact[1]/@id"));
    assert_string_not_equal(id1, xs(&d, "/r:reginfo/r:registration/r:contact[2]/@id"));
    doc_close(&d);
    sbuf_free(&b);
}

static void test_reginfo_partial_terminated(void **state)
{
    (void)state;
    struct reginfo_contact c = {.uri = "sip:bob@192.0.2.9", .state = "terminated",
                                .event = reginfo_event_for_removal(LOCATION_REMOVED_TRANSPORT_LOST), .q1000 = 1000};
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(reginfo_build(&b, 9, false, "sip:bob@example.com", "terminated", &c, 1), 0);
    struct doc d;
    doc_open(&d, b.data, b.len);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "partial");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "deactivated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@expires"), ""); /* only for active */
    doc_close(&d);
    sbuf_free(&b);
    assert_string_equal(reginfo_event_for_removal(LOCATION_REMOVED_EXPIRED), "expired");
    assert_string_equal(reginfo_event_for_removal(LOCATION_REMOVED_UNREGISTER), "unregistered");
    assert_string_equal(reginfo_event_for_removal(LOCATION_REMOVED_KICKED), "rejected");
    assert_string_equal(reginfo_event_for_removal(LOCATION_REMOVED_UNREACHABLE), "deactivated");
}

static void test_clamp_expires(void **state)
{
    (void)state;
    struct subs_config c = {.min_expires = 60, .max_expires = 7200, .default_expires = 3761};
    assert_int_equal(subs_clamp_expires(&c, -1), 3761); /* no Expires */
    assert_int_equal(subs_clamp_expires(&c, 0), 0);     /* unsubscribe / fetch */
    assert_int_equal(subs_clamp_expires(&c, 59), -1);   /* 423 */
    assert_int_equal(subs_clamp_expires(&c, 60), 60);
    assert_int_equal(subs_clamp_expires(&c, 7200), 7200);
    assert_int_equal(subs_clamp_expires(&c, 7201), 7200);
    assert_int_equal(subs_clamp_expires(&c, INT64_MAX), 7200);
}

static void test_event_package(void **state)
{
    (void)state;
    char p[16];
    assert_int_equal(subs_event_package(STR_LIT("reg"), p, sizeof(p)), 3);
    assert_string_equal(p, "reg");
    assert_int_equal(subs_event_package(STR_LIT(" Reg;id=7"), p, sizeof(p)), 3);
    assert_string_equal(p, "reg");
    assert_int_equal(subs_event_package(STR_LIT(""), p, sizeof(p)), -1);
    assert_int_equal(subs_event_package(STR_LIT(";id=1"), p, sizeof(p)), -1);
    assert_int_equal(subs_event_package(STR_LIT("a-package-name-too-long"), p, sizeof(p)), -1);
}

/* ---- the notifier on the stack ---- */

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct auth_server *auth;
    struct digest_checker digest;
    struct location *loc;
    struct registrar *r;
    struct subs *s;
    uint32_t branch;
    int not_taken;
    char authz[1024];
};

static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (subs_on_request(f->s, st, rx)) return;
    if (registrar_on_request(f->r, st, rx)) return;
    f->not_taken++;
    txn_respond(st, 604, "Not Taken", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void start(struct fx *f)
{
    f->users = users_new(NULL);
    harness_add_user(f->h, f->users, "alice", "secret-a");
    harness_add_user(f->h, f->users, "bob", "secret-b");
    struct auth_server_config ac;
    auth_server_config_from(&ac, &f->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    f->auth = auth_server_new(&ac);
    assert_non_null(f->auth);
    digest_checker_init(&f->digest, &f->cfg.auth, &f->h->local, f->users, f->auth, NULL);
    struct auth_config no_auth = f->cfg.auth;
    no_auth.require_auth = false; /* REGISTERs are not what is tested here */
    f->r = subs_fx_registrar(f->h, &f->cfg, &no_auth, f->users, f->auth, &f->loc);
    struct subs_deps sd = {.cfg = &f->cfg.subs, .local = &f->h->local, .require_auth = f->cfg.auth.require_auth,
                           .digest = &f->digest, .registrar = f->r, .ua = f->h->ua, .timers = f->h->timers};
    f->s = subs_new(&sd);
    assert_non_null(f->s);
    struct location_callbacks obs;
    subs_location_observer(f->s, &obs);
    registrar_set_observer(f->r, &obs);
    f->h->on_request = on_request;
    f->h->arg = f;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->h = subs_fx_harness(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    subs_free(f->s);
    subs_fx_free(f->h, f->r, f->loc, f->auth, f->users);
    free(f);
    return 0;
}

/* Sends a SUBSCRIBE for user's reg (to_tag "" for an initial one); extra
 * lines end in \n. Returns the status of the answer to it. */
static int subscribe(struct fx *f, const char *user, const char *call_id, int cseq, const char *to_tag,
                     const char *event, const char *extra)
{
    char text[4096], to[128] = "", ev[64] = "";
    if (to_tag && *to_tag) snprintf(to, sizeof(to), ";tag=%s", to_tag);
    if (event) snprintf(ev, sizeof(ev), "Event: %s\n", event);
    snprintf(text, sizeof(text),
             "SUBSCRIBE sip:%s@example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK-s%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:watcher@example.com>;tag=f1\n"
             "To: <sip:%s@example.com>%s\n"
             "Call-ID: %s\n"
             "CSeq: %d SUBSCRIBE\n"
             "Contact: <sip:watcher@192.0.2.9:5080>\n"
             "%s%s%s"
             "Content-Length: 0\n\n",
             user, ++f->branch, user, to, call_id, cseq, ev, f->authz, extra ? extra : "");
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5080, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    return harness_sent_status(f->h, (size_t)i);
}

/* The last response sent (the answer to a SUBSCRIBE). */
static const struct sip_msg *last_response(struct fx *f)
{
    for (size_t i = harness_sent_count(f->h); i-- > 0;)
        if (harness_sent_status(f->h, i)) return harness_sent_msg(f->h, i);
    fail();
    return NULL;
}

/* The index of the last NOTIFY sent, or -1. */
static int last_notify(struct fx *f) { return harness_find_last_sent(f->h, "NOTIFY "); }

/* Answers the NOTIFY sent at index i with status. */
static void answer_notify(struct fx *f, int i, int status) { harness_answer_sent(f->h, (size_t)i, status, "192.0.2.9", 5080); }

static uint32_t active(struct fx *f)
{
    struct subs_stats st;
    subs_get_stats(f->s, &st);
    return st.active;
}

/* REGISTER (no auth in these tests) of alice's contact with expires. */
static void register_alice(struct fx *f, const char *contact, int expires, int cseq)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK-r%u\n"
             "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=r1\nTo: <sip:alice@example.com>\n"
             "Call-ID: reg-1\nCSeq: %d REGISTER\nContact: <%s>;expires=%d\nContent-Length: 0\n\n",
             ++f->branch, cseq, contact, expires);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 200");
    assert_true(i >= 0);
}

/* Opens the body of the NOTIFY at i. */
static void notify_doc(struct fx *f, int i, struct doc *d)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq_cstr(m->content_type, REGINFO_CONTENT_TYPE));
    doc_open(d, m->body.s, m->body.len);
}

static bool notify_state_is(struct fx *f, int i, const char *state)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    return str_eq_cstr(harness_header(m, SIP_HDR_SUBSCRIPTION_STATE), state);
}

/* The whole life: subscribe, full NOTIFY, partial NOTIFYs for a REGISTER
 * and its removal, refresh, unsubscribe with the terminated NOTIFY. */
static void test_subscription_life(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "sub-1", 1, "", "reg", "Expires: 600\n"), 200);
    const struct sip_msg *ok = last_response(f);
    char tag[64];
    assert_true(ok->to.tag.len > 0 && ok->to.tag.len < sizeof(tag));
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(ok->to.tag));
    assert_true(str_eq_cstr(harness_header(ok, SIP_HDR_EXPIRES), "600"));
    assert_true(harness_header_has(ok, SIP_HDR_CONTACT, "sip:alice@192.0.2.1:5060"));
    assert_int_equal(active(f), 1);

    /* The full NOTIFY, in the dialog: our tag as From tag, theirs as To tag. */
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    assert_true(harness_sent_to(f->h, (size_t)n1, "192.0.2.9", 5080));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)n1);
    assert_true(str_eq_cstr(m->from.tag, tag));
    assert_true(str_eq_cstr(m->to.tag, "f1"));
    assert_true(str_eq_cstr(m->call_id, "sub-1"));
    assert_int_equal(m->cseq.number, 1);
    assert_true(str_eq_cstr(harness_header(m, SIP_HDR_EVENT), "reg"));
    assert_true(notify_state_is(f, n1, "active;expires=600"));
    struct doc d;
    notify_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "0");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "init");
    doc_close(&d);
    answer_notify(f, n1, 200);

    /* A registration: partial, version 1, the contact registered. */
    register_alice(f, "sip:alice@192.0.2.20:5062", 300, 1);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_int_equal(harness_sent_msg(f->h, (size_t)n2)->cseq.number, 2);
    notify_doc(f, n2, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "partial");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "1");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@192.0.2.20:5062");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "registered");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@expires"), "300");
    doc_close(&d);
    answer_notify(f, n2, 200);

    /* A refresh of the registration: event refreshed. */
    register_alice(f, "sip:alice@192.0.2.20:5062", 300, 2);
    int n3 = last_notify(f);
    notify_doc(f, n3, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "refreshed");
    doc_close(&d);
    answer_notify(f, n3, 200);

    /* A refresh of the subscription: 200 with the new expiry, full state. */
    assert_int_equal(subscribe(f, "alice", "sub-1", 2, tag, "reg", "Expires: 1200\n"), 200);
    assert_true(str_eq_cstr(harness_header(last_response(f), SIP_HDR_EXPIRES), "1200"));
    int n4 = last_notify(f);
    assert_true(notify_state_is(f, n4, "active;expires=1200"));
    notify_doc(f, n4, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_true(xn(&d, "count(//r:contact[@state='active'])") == 1);
    doc_close(&d);
    answer_notify(f, n4, 200);

    /* The binding removed: terminated, unregistered, registration terminated. */
    register_alice(f, "sip:alice@192.0.2.20:5062", 0, 3);
    int n5 = last_notify(f);
    notify_doc(f, n5, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "unregistered");
    doc_close(&d);
    answer_notify(f, n5, 200);

    /* An old CSeq in the dialog: 500 (RFC 3261 §12.2.2). */
    assert_int_equal(subscribe(f, "alice", "sub-1", 2, tag, "reg", "Expires: 600\n"), 500);

    /* Unsubscribe: 200, then the terminated NOTIFY; the dialog is gone. */
    assert_int_equal(subscribe(f, "alice", "sub-1", 3, tag, "reg", "Expires: 0\n"), 200);
    int n6 = last_notify(f);
    assert_true(notify_state_is(f, n6, "terminated;reason=timeout"));
    assert_int_equal(harness_sent_msg(f->h, (size_t)n6)->cseq.number, 6);
    assert_int_equal(active(f), 0);
    assert_int_equal(subscribe(f, "alice", "sub-1", 4, tag, "reg", "Expires: 600\n"), 604); /* not ours now */
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    start(f);
    /* A package we do not serve, or none: 489 with Allow-Events. */
    assert_int_equal(subscribe(f, "alice", "b-1", 1, "", "no-such-package", "Expires: 600\n"), 489);
    assert_true(str_eq_cstr(harness_header(last_response(f), SIP_HDR_ALLOW_EVENTS),
                            "reg, dialog, presence, presence.winfo"));
    assert_int_equal(subscribe(f, "alice", "b-2", 1, "", NULL, "Expires: 600\n"), 489);
    /* Too brief: 423 with Min-Expires. */
    assert_int_equal(subscribe(f, "alice", "b-3", 1, "", "reg", "Expires: 10\n"), 423);
    assert_true(str_eq_cstr(harness_header(last_response(f), SIP_HDR_MIN_EXPIRES), "60"));
    /* Too long: granted the maximum. */
    assert_int_equal(subscribe(f, "alice", "b-4", 1, "", "reg", "Expires: 99999\n"), 200);
    assert_true(str_eq_cstr(harness_header(last_response(f), SIP_HDR_EXPIRES), "7200"));
    /* No Expires: the default. */
    assert_int_equal(subscribe(f, "alice", "b-5", 1, "", "reg", NULL), 200);
    assert_true(str_eq_cstr(harness_header(last_response(f), SIP_HDR_EXPIRES), "3761"));
    /* Nobody by that name: 404. */
    assert_int_equal(subscribe(f, "nobody", "b-6", 1, "", "reg", "Expires: 600\n"), 404);
    assert_int_equal(active(f), 2);
    assert_int_equal(f->not_taken, 0);
}

/* Expires: 0 on an initial SUBSCRIBE is a fetch: 200, one terminated NOTIFY
 * with the state, nothing kept (RFC 6665 §4.4.3). */
static void test_fetch(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "fetch-1", 1, "", "reg", "Expires: 0\n"), 200);
    int n = last_notify(f);
    assert_true(n >= 0);
    assert_true(notify_state_is(f, n, "terminated;reason=timeout"));
    assert_int_equal(active(f), 0);
}

/* At expiry the notifier sends the terminated NOTIFY and forgets it. */
static void test_expiry(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "exp-1", 1, "", "reg", "Expires: 60\n"), 200);
    answer_notify(f, last_notify(f), 200);
    harness_advance(f->h, 59000);
    assert_int_equal(active(f), 1);
    size_t before = harness_sent_count(f->h);
    harness_advance(f->h, 2000);
    int n = harness_find_sent(f->h, before, "NOTIFY ");
    assert_true(n >= 0);
    assert_true(notify_state_is(f, n, "terminated;reason=timeout"));
    assert_int_equal(active(f), 0);
}

/* The subscription records ([redis] mirror_presence writes them into the
 * cluster): made, refreshed, gone (unsubscribe, expiry); hooks set later
 * get the subscriptions held; without a list hook subs_records lists this
 * node's. */
struct rec_log {
    int changed, gone, listed;
    char event[16], watcher[64], id[64], gone_id[64];
    int64_t exp;
};

static void rec_changed(void *arg, const struct subs_record *r)
{
    struct rec_log *l = arg;
    l->changed++;
    snprintf(l->event, sizeof(l->event), "%s", r->event);
    snprintf(l->watcher, sizeof(l->watcher), "%s", r->watcher);
    snprintf(l->id, sizeof(l->id), "%s", r->id);
    l->exp = r->expires_wall_ms;
}

static void rec_gone(void *arg, const char *aor, const char *id)
{
    (void)aor;
    struct rec_log *l = arg;
    l->gone++;
    snprintf(l->gone_id, sizeof(l->gone_id), "%s", id);
}

static void rec_listed(void *ctx, int status, const struct subs_record *r, size_t n)
{
    struct rec_log *l = ctx;
    assert_int_equal(status, 0);
    l->listed = (int)n;
    if (n) assert_string_equal(r[0].watcher, "sip:watcher@example.com");
    if (n) assert_null(r[0].node);
}

static void test_record_hooks(void **state)
{
    struct fx *f = *state;
    start(f);
    struct rec_log l = {0};
    assert_int_equal(subscribe(f, "alice", "r-1", 1, "", "reg", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    struct subs_record_hooks h = {.arg = &l, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &h); /* the one held is told */
    assert_int_equal(l.changed, 1);
    assert_string_equal(l.event, "reg");
    assert_string_equal(l.watcher, "sip:watcher@example.com");
    const struct sip_msg *ok = last_response(f);
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(ok->to.tag));
    assert_string_equal(l.id, tag);
    int64_t first = l.exp;
    assert_true(first > 0);
    void *handle = (void *)1;
    assert_int_equal(subs_records(f->s, "alice", rec_listed, &l, &handle), 0);
    assert_null(handle);
    assert_int_equal(l.listed, 1);
    assert_int_equal(subs_records(f->s, "bob", rec_listed, &l, &handle), 0);
    assert_int_equal(l.listed, 0);
    /* refreshed: told again, a later expiry */
    harness_advance(f->h, 1000);
    assert_int_equal(subscribe(f, "alice", "r-1", 2, tag, "reg", "Expires: 1200\n"), 200);
    assert_int_equal(l.changed, 2);
    assert_true(l.exp > first);
    /* unsubscribed: gone */
    assert_int_equal(subscribe(f, "alice", "r-1", 3, tag, "reg", "Expires: 0\n"), 200);
    assert_int_equal(l.gone, 1);
    assert_string_equal(l.gone_id, tag);
    /* a new one that expires: made, then gone */
    assert_int_equal(subscribe(f, "alice", "r-2", 1, "", "reg", "Expires: 60\n"), 200);
    assert_int_equal(l.changed, 3);
    answer_notify(f, last_notify(f), 200);
    harness_advance(f->h, 61000);
    assert_int_equal(l.gone, 2);
    subs_set_record_hooks(f->s, NULL);
}

/* A 481 to a NOTIFY, or no answer at all, ends the subscription (RFC 6665
 * §4.2.2) without another NOTIFY. */
static void test_notify_failure_ends(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "g-1", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "alice", "g-2", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(active(f), 2);
    /* g-1's NOTIFY is answered 481. */
    int i = harness_find_sent(f->h, 0, "NOTIFY ");
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)i)->call_id, "g-1"));
    answer_notify(f, i, 481);
    assert_int_equal(active(f), 1);
    /* g-2's is never answered: after Timer F (64*T1) it is gone. */
    size_t before = harness_sent_count(f->h);
    harness_advance(f->h, 40000);
    assert_int_equal(active(f), 0);
    /* Retransmissions of that NOTIFY only; no terminated NOTIFY. */
    for (size_t k = before; k < harness_sent_count(f->h); k++)
        assert_false(harness_header_has(harness_sent_msg(f->h, k), SIP_HDR_SUBSCRIPTION_STATE, "terminated"));
}

static void test_caps(void **state)
{
    struct fx *f = *state;
    f->cfg.subs.max_per_subscriber = 2;
    f->cfg.subs.max_total = 2;
    start(f);
    assert_int_equal(subscribe(f, "alice", "c-1", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "bob", "c-2", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "alice", "c-3", 1, "", "reg", "Expires: 600\n"), 503); /* total */
    assert_true(harness_header_has(last_response(f), SIP_HDR_RETRY_AFTER, "60"));
    subs_free(f->s);
    struct subs_deps sd = {.cfg = &f->cfg.subs, .local = &f->h->local, .digest = &f->digest, .registrar = f->r,
                           .ua = f->h->ua, .timers = f->h->timers};
    f->cfg.subs.max_total = 0;
    f->s = subs_new(&sd);
    assert_int_equal(subscribe(f, "alice", "c-4", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "bob", "c-5", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "alice", "c-6", 1, "", "reg", "Expires: 600\n"), 403); /* per subscriber */
    assert_int_equal(active(f), 2);
}

/* The per-subscriber count (the watcher's From URI) follows subscriptions
 * as they end: a subscriber at its cap gets room back when one ends, and a
 * refresh is not counted as one more. */
static void test_subscriber_count_follows(void **state)
{
    struct fx *f = *state;
    f->cfg.subs.max_per_subscriber = 2;
    start(f);
    assert_int_equal(subscribe(f, "alice", "k-1", 1, "", "reg", "Expires: 600\n"), 200);
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(last_response(f)->to.tag));
    assert_int_equal(subscribe(f, "alice", "k-2", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "alice", "k-3", 1, "", "reg", "Expires: 600\n"), 403);
    /* A refresh is no new subscription: it does not count. */
    assert_int_equal(subscribe(f, "alice", "k-1", 2, tag, "reg", "Expires: 600\n"), 200);
    /* alice ends one: room for one more, and only one. */
    assert_int_equal(subscribe(f, "alice", "k-1", 3, tag, "reg", "Expires: 0\n"), 200);
    assert_int_equal(subscribe(f, "alice", "k-5", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(subscribe(f, "bob", "k-6", 1, "", "reg", "Expires: 600\n"), 403);
    assert_int_equal(active(f), 2);
}

/* One NOTIFY in flight at a time: a change while one is unanswered waits,
 * and the answer brings the full state (with the change) in the next. */
static void test_one_notify_in_flight(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "q-1", 1, "", "reg", "Expires: 600\n"), 200);
    int n1 = last_notify(f);
    register_alice(f, "sip:alice@192.0.2.20:5062", 300, 1);
    assert_int_equal(harness_count_sent(f->h, (size_t)n1 + 1, "NOTIFY "), 0);
    answer_notify(f, n1, 200);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_int_equal(harness_sent_msg(f->h, (size_t)n2)->cseq.number, 2);
    struct doc d;
    notify_doc(f, n2, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "1");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@192.0.2.20:5062");
    doc_close(&d);
    answer_notify(f, n2, 200);
    /* Nothing changed since: no further NOTIFY. */
    assert_int_equal(harness_count_sent(f->h, (size_t)n2 + 1, "NOTIFY "), 0);
}

/* A binding whose TCP connection is lost: a partial NOTIFY with the contact
 * terminated, event deactivated (RFC 3680 §5.3: it may come back). */
static void test_transport_loss_deactivated(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "t-1", 1, "", "reg", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    f->h->conn_id = 77;
    char text[1024];
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TCP 192.0.2.20:5062;branch=z9hG4bK-tcp1\n"
             "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=r1\nTo: <sip:alice@example.com>\n"
             "Call-ID: reg-tcp\nCSeq: 1 REGISTER\nContact: <sip:alice@192.0.2.20:5062;transport=tcp>;expires=300\n"
             "Content-Length: 0\n\n");
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_TCP, text), 0);
    int n = last_notify(f);
    answer_notify(f, n, 200);
    registrar_on_conn_lost(f->r, 77, "192.0.2.20:5062");
    int m = last_notify(f);
    assert_true(m > n);
    struct doc d;
    notify_doc(f, m, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "partial");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "deactivated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "terminated");
    doc_close(&d);
}

/* The route set: the 200 carries the Record-Route set, and NOTIFYs go to
 * its first entry with Route lines in order (RFC 3261 §12.1.1, §12.2.1.1). */
static void test_record_route(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "rr-1", 1, "", "reg",
                               "Expires: 600\nRecord-Route: <sip:192.0.2.50:5070;lr>, <sip:192.0.2.51;lr>\n"),
                     200);
    const struct sip_msg *ok = last_response(f);
    assert_true(harness_header_has(ok, SIP_HDR_RECORD_ROUTE, "192.0.2.50:5070"));
    int n = last_notify(f);
    assert_true(harness_sent_to(f->h, (size_t)n, "192.0.2.50", 5070));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)n);
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 2);
    assert_true(harness_header_has(m, SIP_HDR_ROUTE, "192.0.2.50:5070"));
    assert_true(str_eq_cstr(m->ruri.raw, "sip:watcher@192.0.2.9:5080"));
}

/* Puts user's answer to *ch (nc: the request count) in f->authz; with
 * read_401, *ch is first read from the last 401's WWW-Authenticate. */
static void answer_challenge(struct fx *f, struct auth_challenge *ch, bool read_401, const char *user,
                             const char *password, uint32_t nc)
{
    if (read_401) {
        str_t v = harness_header(last_response(f), SIP_HDR_WWW_AUTHENTICATE);
        static char copy[1024]; /* ch points into it */
        snprintf(copy, sizeof(copy), "%.*s", STR_FMT(v));
        assert_int_equal(auth_parse_challenge(str_from_cstr(copy), ch), 0);
    }
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "Authorization: ");
    assert_int_equal(auth_client_answer(ch, str_from_cstr(user), str_from_cstr(password), STR_LIT("SUBSCRIBE"),
                                        STR_LIT("sip:alice@example.com"), nc, STR_NULL, &b),
                     0);
    sbuf_append_cstr(&b, "\n");
    snprintf(f->authz, sizeof(f->authz), "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
}

/* With [auth] require_auth: 401 first; the AoR's own user only. */
static void test_own_user_only(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.require_auth = true;
    start(f);
    assert_int_equal(subscribe(f, "alice", "a-1", 1, "", "reg", "Expires: 600\n"), 401);
    struct auth_challenge ch;
    answer_challenge(f, &ch, true, "bob", "secret-b", 1);
    assert_int_equal(subscribe(f, "alice", "a-1", 2, "", "reg", "Expires: 600\n"), 403); /* bob may not */
    answer_challenge(f, &ch, false, "alice", "secret-a", 2);
    assert_int_equal(subscribe(f, "alice", "a-1", 3, "", "reg", "Expires: 600\n"), 200);
    f->authz[0] = '\0';
}

/* [subscriptions] reg_any_user: every authenticated user may watch any AoR. */
static void test_reg_any_user(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.require_auth = true;
    f->cfg.subs.reg_any_user = true;
    start(f);
    assert_int_equal(subscribe(f, "alice", "y-1", 1, "", "reg", "Expires: 600\n"), 401);
    struct auth_challenge ch;
    answer_challenge(f, &ch, true, "bob", "secret-b", 1);
    assert_int_equal(subscribe(f, "alice", "y-1", 2, "", "reg", "Expires: 600\n"), 200); /* bob may */
    f->authz[0] = '\0';
}

/* ---- dialog (RFC 4235) and message-summary (RFC 3842) ---- */

/* Parses SIP text (LF line ends) into m, its bytes in buf and a. */
static void parse_text(const char *text, char *buf, size_t cap, arena_t *a, struct sip_msg *m)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 2 < cap; p++) {
        if (*p == '\n') buf[n++] = '\r';
        buf[n++] = *p;
    }
    struct sip_parse_error err;
    assert_int_equal(sip_parse(buf, n, a, NULL, m, &err), 0);
}

/* The string value of xpath in the body of the NOTIFY at i (elements by local name). */
static const char *notify_xs(struct fx *f, int i, const char *xpath)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    struct doc d;
    doc_open(&d, m->body.s, m->body.len);
    const char *v = xs(&d, xpath);
    doc_close(&d);
    return v;
}

#define DLG "/*[local-name()='dialog-info']/*[local-name()='dialog']"

/* bob watches his calls; the proxy reports alice's call to him (INVITE,
 * 180, 200, BYE from alice) and a rejected one: each change is one partial
 * NOTIFY, sent without waiting for the previous answer, and a call that
 * ended is forgotten. A call of an AoR nobody watches is not tracked. */
static void test_dialog_package(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "bob", "d-1", 1, "", "dialog", "Expires: 600\n"), 200);
    int first = last_notify(f);
    assert_true(first >= 0);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)first)->content_type, DIALOG_INFO_CONTENT_TYPE));
    assert_string_equal(notify_xs(f, first, "count(" DLG ")"), "0");
    assert_string_equal(notify_xs(f, first, "/*/@state"), "full");

    _Alignas(16) static char mem[65536];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    char b1[2048], b2[2048], b3[2048], b4[2048];
    struct sip_msg inv, r180, r200, bye;
    parse_text("INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i1\n"
               "From: \"Alice\" <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>\nCall-ID: call-1\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b1, sizeof(b1), &a, &inv);
    parse_text("SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i1\n"
               "From: \"Alice\" <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>;tag=bt\nCall-ID: call-1\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b2, sizeof(b2), &a, &r180);
    parse_text("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i1\n"
               "From: \"Alice\" <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>;tag=bt\nCall-ID: call-1\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b3, sizeof(b3), &a, &r200);
    parse_text("BYE sip:bob@192.0.2.40 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-b1\n"
               "From: \"Alice\" <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>;tag=bt\nCall-ID: call-1\n"
               "CSeq: 2 BYE\nContent-Length: 0\n\n",
               b4, sizeof(b4), &a, &bye);

    subs_on_call(f->s, SUBS_CALL_INVITE, &inv, NULL, 0, false, false);
    int n1 = last_notify(f);
    assert_true(n1 > first); /* sent although the first NOTIFY is unanswered */
    assert_string_equal(notify_xs(f, n1, "/*/@state"), "partial");
    assert_string_equal(notify_xs(f, n1, "/*/@version"), "1");
    assert_string_equal(notify_xs(f, n1, DLG "/*[local-name()='state']"), "trying");
    assert_string_equal(notify_xs(f, n1, DLG "/@direction"), "recipient");
    assert_string_equal(notify_xs(f, n1, DLG "/@remote-tag"), "at");
    assert_string_equal(notify_xs(f, n1, DLG "/*[local-name()='remote']/*[local-name()='identity']/@display"),
                        "Alice");
    subs_on_call(f->s, SUBS_CALL_RESPONSE, &inv, &r180, 180, false, false);
    int n2 = last_notify(f);
    assert_string_equal(notify_xs(f, n2, DLG "/*[local-name()='state']"), "early");
    assert_string_equal(notify_xs(f, n2, DLG "/@local-tag"), "bt");
    subs_on_call(f->s, SUBS_CALL_RESPONSE, &inv, &r180, 180, false, false); /* no change: no NOTIFY */
    assert_int_equal(last_notify(f), n2);
    subs_on_call(f->s, SUBS_CALL_RESPONSE, &inv, &r200, 200, false, false);
    int n3 = last_notify(f);
    assert_string_equal(notify_xs(f, n3, DLG "/*[local-name()='state']"), "confirmed");
    subs_on_call(f->s, SUBS_CALL_BYE, &bye, NULL, 0, false, false);
    int n4 = last_notify(f);
    assert_string_equal(notify_xs(f, n4, DLG "/*[local-name()='state']"), "terminated");
    assert_string_equal(notify_xs(f, n4, DLG "/*[local-name()='state']/@event"), "remote-bye");
    assert_string_equal(notify_xs(f, n4, "/*/@version"), "4");

    /* A rejected call: the proxy's own 480 (no response message). */
    subs_on_call(f->s, SUBS_CALL_INVITE, &inv, NULL, 0, false, false); /* the same ids: a new entry */
    subs_on_call(f->s, SUBS_CALL_RESPONSE, &inv, NULL, 480, false, false);
    int n6 = last_notify(f);
    assert_string_equal(notify_xs(f, n6, DLG "/*[local-name()='state']/@event"), "rejected");
    assert_string_equal(notify_xs(f, n6, DLG "/*[local-name()='state']/@code"), "480");

    /* alice calls carol: nobody watches either, nothing sent. */
    size_t before = harness_sent_count(f->h);
    struct sip_msg other;
    char b5[2048];
    parse_text("INVITE sip:carol@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i9\n"
               "From: <sip:alice@example.com>;tag=x\nTo: <sip:carol@example.com>\nCall-ID: call-9\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b5, sizeof(b5), &a, &other);
    subs_on_call(f->s, SUBS_CALL_INVITE, &other, NULL, 0, false, false);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    arena_free(&a);
}

static int count_one(void *arg, const struct dialog_info_entry *e)
{
    (void)e;
    ++*(int *)arg;
    return 0;
}

/* The dialog hooks (subs/dialog_mirror.h): a fake follower. */
struct fake_dlg {
    int watchers;
    bool pending;                      /* the first read is in flight */
    struct dialog_remote remote[2];
    size_t n;
    int changed;
    char changed_aor[8][64];
    char changed_id[8][17];
};

static void fdlg_watch(void *arg, const char *aor, bool on)
{
    (void)aor;
    struct fake_dlg *d = arg;
    d->watchers += on ? 1 : -1;
}

static bool fdlg_shared(void *arg, const char *aor)
{
    (void)arg;
    return strncmp(aor, "carol", 5) == 0;
}

static bool fdlg_pending(void *arg, const char *aor)
{
    (void)aor;
    return ((struct fake_dlg *)arg)->pending;
}

static void fdlg_changed(void *arg, const struct dialog_info_entry *e)
{
    struct fake_dlg *d = arg;
    if (d->changed < 8) {
        snprintf(d->changed_aor[d->changed], sizeof(d->changed_aor[0]), "%s", dialog_table_aor(e));
        snprintf(d->changed_id[d->changed], sizeof(d->changed_id[0]), "%s", e->id);
    }
    d->changed++;
}

static size_t fdlg_remote(void *arg, const char *aor, const struct dialog_remote **out)
{
    (void)aor;
    struct fake_dlg *d = arg;
    *out = d->remote;
    return d->n;
}

static struct dialog_remote remote_call(const char *id, enum dialog_state st)
{
    struct dialog_remote r;
    memset(&r, 0, sizeof(r));
    snprintf(r.e.id, sizeof(r.e.id), "%s", id);
    snprintf(r.e.call_id, sizeof(r.e.call_id), "far-%s", id);
    snprintf(r.e.remote_uri, sizeof(r.e.remote_uri), "sip:dave@example.com");
    snprintf(r.node, sizeof(r.node), "node-b");
    r.e.state = st;
    return r;
}

/* Another node's calls in the full document and as partial NOTIFYs; a
 * call tracked here too is told once (by this node); a call of an AoR
 * watched elsewhere only is tracked and handed to the hook, nothing sent. */
static void test_dialog_other_nodes(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_dlg fd = {.n = 2};
    fd.remote[0] = remote_call("00000000000000aa", DIALOG_EARLY);
    fd.remote[1] = remote_call("00000000000000bb", DIALOG_TERMINATED); /* not in a full document */
    struct subs_dialog_hooks h = {.arg = &fd, .watch = fdlg_watch, .shared = fdlg_shared, .changed = fdlg_changed,
                                  .remote = fdlg_remote};
    subs_set_dialog_hooks(f->s, &h);
    assert_int_equal(subscribe(f, "bob", "dn-1", 1, "", "dialog", "Expires: 600\n"), 200);
    assert_int_equal(fd.watchers, 1);
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    assert_string_equal(notify_xs(f, n1, "/*/@state"), "full");
    assert_string_equal(notify_xs(f, n1, "count(" DLG ")"), "1");
    assert_string_equal(notify_xs(f, n1, DLG "/@id"), "00000000000000aa");
    assert_string_equal(notify_xs(f, n1, DLG "/*[local-name()='state']"), "early");

    /* a change read from Redis: partial, version 1 */
    struct dialog_info_entry ch = fd.remote[0].e;
    ch.state = DIALOG_CONFIRMED;
    subs_dialog_remote_changed(f->s, "bob", &ch, 1);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_string_equal(notify_xs(f, n2, "/*/@state"), "partial");
    assert_string_equal(notify_xs(f, n2, "/*/@version"), "1");
    assert_string_equal(notify_xs(f, n2, DLG "/*[local-name()='state']"), "confirmed");

    /* a call to bob through this node: tracked, handed to the hook, notified once */
    _Alignas(16) static char mem[65536];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    char b1[2048], b2[2048];
    struct sip_msg inv, inv2;
    parse_text("INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i1\n"
               "From: <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>\nCall-ID: call-1\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b1, sizeof(b1), &a, &inv);
    subs_on_call(f->s, SUBS_CALL_INVITE, &inv, NULL, 0, false, false);
    int n3 = last_notify(f);
    assert_true(n3 > n2);
    assert_int_equal(fd.changed, 1);
    assert_string_equal(fd.changed_id[0], notify_xs(f, n3, DLG "/@id"));
    /* the same call read from another node (it went through both): not told again */
    struct dialog_info_entry same = fd.remote[0].e;
    snprintf(same.id, sizeof(same.id), "%s", fd.changed_id[0]);
    subs_dialog_remote_changed(f->s, "bob", &same, 1);
    assert_int_equal(last_notify(f), n3);

    /* alice calls carol, watched on another node only: tracked for her, no NOTIFY */
    size_t before = harness_sent_count(f->h);
    parse_text("INVITE sip:carol@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i2\n"
               "From: <sip:alice@example.com>;tag=x\nTo: <sip:carol@example.com>\nCall-ID: call-2\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b2, sizeof(b2), &a, &inv2);
    subs_on_call(f->s, SUBS_CALL_INVITE, &inv2, NULL, 0, false, false);
    assert_int_equal(fd.changed, 2);
    assert_int_equal(strncmp(fd.changed_aor[1], "carol", 5), 0);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    subs_on_call(f->s, SUBS_CALL_RESPONSE, &inv2, NULL, 486, false, false);
    assert_int_equal(fd.changed, 3); /* its end handed over too, then dropped */
    int tracked = 0;
    subs_dialog_foreach(f->s, count_one, &tracked);
    assert_int_equal(tracked, 1); /* bob's call only */

    /* the hooks go and come back: the watcher counted once */
    subs_set_dialog_hooks(f->s, NULL);
    fd.watchers = 0;
    subs_set_dialog_hooks(f->s, &h);
    assert_int_equal(fd.watchers, 1);
    subs_set_dialog_hooks(f->s, NULL);
    arena_free(&a);
}

/* As reg does: a first dialog watcher's NOTIFY waits for the first read of
 * the other nodes' calls and lists them (not sent at once and followed by a
 * partial one); a call here meanwhile waits for it too; the hooks going
 * release a watcher still waiting, with this node's view. */
static void test_dialog_first_read(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_dlg fd = {.pending = true};
    struct subs_dialog_hooks h = {.arg = &fd, .watch = fdlg_watch, .shared = fdlg_shared, .changed = fdlg_changed,
                                  .remote = fdlg_remote, .pending = fdlg_pending};
    subs_set_dialog_hooks(f->s, &h);
    assert_int_equal(subscribe(f, "bob", "dw-1", 1, "", "dialog", "Expires: 600\n"), 200);
    assert_int_equal(fd.watchers, 1);
    assert_int_equal(last_notify(f), -1); /* waiting for the first read */
    /* a call to bob through this node meanwhile: no partial NOTIFY before the full one */
    _Alignas(16) static char mem[65536];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    char b1[2048];
    struct sip_msg inv;
    parse_text("INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-w1\n"
               "From: <sip:alice@example.com>;tag=wt\nTo: <sip:bob@example.com>\nCall-ID: call-w\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b1, sizeof(b1), &a, &inv);
    subs_on_call(f->s, SUBS_CALL_INVITE, &inv, NULL, 0, false, false);
    assert_int_equal(last_notify(f), -1);
    /* the first read answers: one full NOTIFY, version 0, with both calls */
    fd.remote[0] = remote_call("00000000000000cc", DIALOG_CONFIRMED);
    fd.n = 1;
    fd.pending = false;
    subs_dialog_remote_changed(f->s, "bob", &fd.remote[0].e, 1);
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    assert_int_equal(harness_count_sent(f->h, 0, "NOTIFY "), 1);
    assert_string_equal(notify_xs(f, n1, "/*/@state"), "full");
    assert_string_equal(notify_xs(f, n1, "/*/@version"), "0");
    assert_string_equal(notify_xs(f, n1, "count(" DLG ")"), "2");
    assert_string_equal(notify_xs(f, n1, DLG "[@id='00000000000000cc']/*[local-name()='state']"), "confirmed");
    answer_notify(f, n1, 200);
    /* the first read with nothing to tell releases a waiting watcher too */
    fd.pending = true;
    assert_int_equal(subscribe(f, "bob", "dw-2", 1, "", "dialog", "Expires: 600\n"), 200);
    assert_int_equal(last_notify(f), n1);
    fd.pending = false;
    subs_dialog_remote_changed(f->s, "bob", NULL, 0);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)n2)->call_id, "dw-2"));
    assert_string_equal(notify_xs(f, n2, "/*/@state"), "full");
    /* a third waits; the hooks go: it gets this node's view */
    fd.pending = true;
    assert_int_equal(subscribe(f, "bob", "dw-3", 1, "", "dialog", "Expires: 600\n"), 200);
    assert_int_equal(last_notify(f), n2);
    subs_set_dialog_hooks(f->s, NULL);
    int n3 = last_notify(f);
    assert_true(n3 > n2);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)n3)->call_id, "dw-3"));
    assert_string_equal(notify_xs(f, n3, "count(" DLG ")"), "1"); /* this node's call only */
    arena_free(&a);
}

/* The dialog follower (subs/dialog_mirror.h) on a fake Redis: every
 * command kept, answered by the test. */
struct dcmd {
    char name[16], key[160], arg2[200];
    dialog_mirror_cb cb;
    void *arg;
    bool done;
};
struct dio {
    struct dcmd q[64];
    size_t n;
    int64_t wall;
};

static int dio_command(void *arg, const char *key, int argc, const char **argv, const size_t *lens, dialog_mirror_cb cb,
                       void *cb_arg)
{
    (void)lens;
    struct dio *io = arg;
    assert_true(io->n < 64);
    struct dcmd *c = &io->q[io->n++];
    *c = (struct dcmd){.cb = cb, .arg = cb_arg};
    snprintf(c->name, sizeof(c->name), "%s", argv[0]);
    snprintf(c->key, sizeof(c->key), "%s", key);
    if (argc > 2) snprintf(c->arg2, sizeof(c->arg2), "%s", argv[2]);
    return 0;
}

static int64_t dio_wall(void *arg) { return ((struct dio *)arg)->wall; }
static bool dio_alive(void *arg, const char *node) { (void)arg; return strcmp(node, "dead") != 0; }

/* The index of the n-th (0: first) unanswered command named name, or -1. */
static int dio_find(const struct dio *io, const char *name, int nth)
{
    for (size_t i = 0; i < io->n; i++)
        if (!io->q[i].done && !strcmp(io->q[i].name, name) && nth-- == 0) return (int)i;
    return -1;
}

static int dio_count(const struct dio *io, const char *name)
{
    int k = 0;
    for (size_t i = 0; i < io->n; i++) k += !strcmp(io->q[i].name, name);
    return k;
}

/* Answers command i: an HGETALL of n pairs (kv), or status < 0. */
static void dio_answer(struct dio *io, int i, int status, const char *const *kv, size_t n)
{
    redisReply e[8], *ptr[8];
    assert_true(i >= 0 && 2 * n <= 8 && !io->q[i].done);
    for (size_t k = 0; k < 2 * n; k++) {
        e[k] = (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)kv[k], .len = strlen(kv[k])};
        ptr[k] = &e[k];
    }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2 * n, .element = ptr};
    io->q[i].done = true;
    io->q[i].cb(io->q[i].arg, status, status < 0 ? NULL : &arr);
}

static void dio_answer_all(struct dio *io, int status)
{
    for (size_t i = 0; i < io->n; i++)
        if (!io->q[i].done) dio_answer(io, (int)i, status, NULL, 0);
}

static void test_dialog_follower(void **state)
{
    struct fx *f = *state;
    start(f);
    struct dio io = {.wall = 1700000000000LL};
    struct dialog_mirror_io dmio = {.arg = &io, .command = dio_command, .alive = dio_alive, .wall_ms = dio_wall};
    struct dialog_mirror *m = dialog_mirror_new_io(f->h->timers, f->s, "t:", "node-a", &dmio);
    assert_non_null(m);
    struct dialog_mirror_stats st;

    assert_int_equal(subscribe(f, "bob", "df-1", 1, "", "dialog", "Expires: 600\n"), 200);
    assert_int_equal(last_notify(f), -1); /* the first NOTIFY waits for the first read */
    int pub = dio_find(&io, "PUBLISH", 0), rd = dio_find(&io, "HGETALL", 0);
    assert_true(pub >= 0 && rd >= 0);
    char key[160], aor[128], msg[200];
    snprintf(key, sizeof(key), "%s", io.q[rd].key);
    assert_int_equal(strncmp(key, "t:dlg:{", 7), 0);
    snprintf(aor, sizeof(aor), "%.*s", (int)(strlen(key) - 8), key + 7);
    snprintf(msg, sizeof(msg), "t:dlgw:{%s} node-a", aor);
    assert_string_equal(io.q[pub].arg2, msg); /* the announcement */
    dio_answer(&io, pub, 0, NULL, 0);

    /* a burst of change messages during the read: one more read after it */
    for (int i = 0; i < 3; i++) dialog_mirror_message(m, key, strlen(key));
    assert_int_equal(dio_count(&io, "HGETALL"), 1);
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.coalesced, 1);
    assert_int_equal(st.followed, 1);

    struct dialog_info_entry e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "00000000000000aa");
    snprintf(e.call_id, sizeof(e.call_id), "far-1");
    snprintf(e.remote_uri, sizeof(e.remote_uri), "sip:dave@example.com");
    e.state = DIALOG_EARLY;
    char fb[DIALOG_NODES_FIELD_MAX], vb[1024], fa[DIALOG_NODES_FIELD_MAX], va[1024], fd[DIALOG_NODES_FIELD_MAX],
        vd[1024];
    assert_true(dialog_nodes_encode("node-b", &e, io.wall + 60000, fb, sizeof(fb), vb, sizeof(vb)) > 0);
    e.id[15] = 'b';
    assert_true(dialog_nodes_encode("node-a", &e, io.wall + 60000, fa, sizeof(fa), va, sizeof(va)) > 0); /* ours */
    e.id[15] = 'c';
    assert_true(dialog_nodes_encode("dead", &e, io.wall + 60000, fd, sizeof(fd), vd, sizeof(vd)) > 0);
    const char *kv1[] = {fb, vb, fa, va, fd, vd, "junk", "{}"};
    dio_answer(&io, rd, 0, kv1, 4);
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    assert_int_equal(harness_count_sent(f->h, 0, "NOTIFY "), 1); /* the full one, with the call read */
    assert_string_equal(notify_xs(f, n1, "/*/@state"), "full");
    assert_string_equal(notify_xs(f, n1, "count(" DLG ")"), "1");
    assert_string_equal(notify_xs(f, n1, DLG "/@id"), "00000000000000aa");
    assert_string_equal(notify_xs(f, n1, DLG "/*[local-name()='state']"), "early");
    int rd2 = dio_find(&io, "HGETALL", 0);
    assert_true(rd2 > rd); /* the burst's read */
    dio_answer(&io, rd2, 0, kv1, 4);
    assert_int_equal(last_notify(f), n1); /* the same: nothing to tell */
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.reads, 2);
    assert_int_equal(st.rejected, 2); /* junk, twice */
    assert_int_equal(st.remote, 1);
    answer_notify(f, n1, 200);

    /* Redis does not answer: the call stays; retried 1 s later */
    dialog_mirror_message(m, key, strlen(key));
    int rd3 = dio_find(&io, "HGETALL", 0);
    dio_answer(&io, rd3, -ETIMEDOUT, NULL, 0);
    assert_int_equal(last_notify(f), n1);
    assert_int_equal(dio_find(&io, "HGETALL", 0), -1);
    harness_advance(f->h, 1000);
    int rd4 = dio_find(&io, "HGETALL", 0);
    assert_true(rd4 > rd3);
    /* its node stopped renewing: gone from the hash, terminated without event */
    dio_answer(&io, rd4, 0, NULL, 0);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_string_equal(notify_xs(f, n2, DLG "/*[local-name()='state']"), "terminated");
    assert_string_equal(notify_xs(f, n2, DLG "/*[local-name()='state']/@event"), "");
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.read_failures, 1);
    assert_int_equal(st.remote, 0);

    /* carol is watched on node-c: her calls here are written, announced */
    char other[200], carol[128];
    const char *at = strchr(aor, '@');
    snprintf(carol, sizeof(carol), "carol%s", at ? at : "");
    snprintf(other, sizeof(other), "t:dlgw:{%s} node-c", carol);
    dialog_mirror_message(m, other, strlen(other));
    snprintf(other, sizeof(other), "t:dlgw:{someone} node-a"); /* our own: not "elsewhere" */
    dialog_mirror_message(m, other, strlen(other));
    dialog_mirror_message(m, "t:dlg:{x", 8);                   /* unreadable */
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.watched_elsewhere, 1);
    assert_int_equal(st.bad_messages, 1);
    _Alignas(16) static char mem[16384];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    char b1[2048];
    struct sip_msg inv;
    parse_text("INVITE sip:carol@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bK-i7\n"
               "From: <sip:alice@example.com>;tag=x\nTo: <sip:carol@example.com>\nCall-ID: call-7\n"
               "CSeq: 1 INVITE\nContent-Length: 0\n\n",
               b1, sizeof(b1), &a, &inv);
    subs_on_call(f->s, SUBS_CALL_INVITE, &inv, NULL, 0, false, false);
    int w = dio_find(&io, "EVAL", 0);
    assert_true(w >= 0);
    snprintf(other, sizeof(other), "t:dlg:{%s}", carol);
    assert_string_equal(io.q[w].key, other);
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.writes, 1);
    /* a node (re)subscribed asks for the announcements: bob's again */
    int pubs = dio_count(&io, "PUBLISH");
    dialog_mirror_message(m, "t:dlgw-sync", 11);
    assert_int_equal(dio_count(&io, "PUBLISH"), pubs + 1);
    /* after three announcement periods without news, carol is forgotten */
    dio_answer_all(&io, 0);
    harness_advance(f->h, 4 * DIALOG_MIRROR_ANNOUNCE_MS + 1000); /* (the tick that sees it past) */
    dialog_mirror_get_stats(m, &st);
    assert_int_equal(st.watched_elsewhere, 0);
    assert_true(st.writes >= 3); /* her live call's lease renewed meanwhile */

    dio_answer_all(&io, -ECANCELED);
    dialog_mirror_free(m);
    arena_free(&a);
}

/* Injects a message-summary NOTIFY for alice from ip with body; the status of the answer. */
static int summary_from(struct fx *f, const char *ip, const char *body)
{
    char text[4096];
    unsigned id = ++f->branch;
    snprintf(text, sizeof(text),
             "NOTIFY sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK-m%u\n"
             "Max-Forwards: 70\nFrom: <sip:vm@%s>;tag=vm1\nTo: <sip:alice@example.com>\nCall-ID: mwi-%u\n"
             "CSeq: 1 NOTIFY\nEvent: message-summary\nSubscription-State: active\n"
             "Content-Type: application/simple-message-summary\nContent-Length: %zu\n\n%s",
             ip, id, ip, id, strlen(body), body);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, ip, 5060, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    return harness_sent_status(f->h, (size_t)i);
}

/* With a voicemail source: the watcher's first NOTIFY says nothing is
 * waiting; the source's summary is relayed as sent; strangers get 403,
 * bad bodies 400. Without one the package is not served (489). */
static void test_message_summary(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.subs.voicemail_source, sizeof(f->cfg.subs.voicemail_source), "192.0.2.50");
    start(f);
    assert_int_equal(subscribe(f, "alice", "m-1", 1, "", "message-summary", "Expires: 600\n"), 200);
    int n1 = last_notify(f);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)n1);
    assert_true(str_eq_cstr(m->content_type, MWI_CONTENT_TYPE));
    assert_true(str_eq_cstr(m->body, MWI_NOTHING_WAITING));
    answer_notify(f, n1, 200);
    static const char good[] = "Messages-Waiting: yes\r\nVoice-Message: 3/1 (1/0)\r\n";
    assert_int_equal(summary_from(f, "192.0.2.9", good), 403);
    assert_int_equal(summary_from(f, "192.0.2.50", "Messages-Waiting: perhaps\r\n"), 400);
    assert_int_equal(last_notify(f), n1);
    assert_int_equal(summary_from(f, "192.0.2.50", good), 200);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)n2)->body, good));
    assert_true(harness_header_has(harness_sent_msg(f->h, (size_t)n2), SIP_HDR_EVENT, "message-summary"));
}

static void test_message_summary_off(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "m-2", 1, "", "message-summary", "Expires: 600\n"), 489);
    /* A NOTIFY for a user is not the notifier's: it goes on to the proxy (here: not taken). */
    int before = f->not_taken;
    assert_int_equal(summary_from(f, "192.0.2.50", "Messages-Waiting: yes\r\n"), 604);
    assert_int_equal(f->not_taken, before + 1);
}

/* The index of the last NOTIFY of package event sent, or -1. */
static int last_notify_of(struct fx *f, const char *event)
{
    int found = -1;
    for (int i = 0; (i = harness_find_sent(f->h, (size_t)i, "NOTIFY ")) >= 0; i++)
        if (harness_header_has(harness_sent_msg(f->h, (size_t)i), SIP_HDR_EVENT, event)) found = i;
    return found;
}

static void winfo_doc(struct fx *f, int i, struct doc *d)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq_cstr(m->content_type, WINFO_CONTENT_TYPE));
    doc_open_ns(d, m->body.s, m->body.len, "winfo", "w", "urn:ietf:params:xml:ns:watcherinfo");
}

/* presence.winfo (RFC 3857/3858): alice's watcher list, full state in each
 * NOTIFY, as presence subscriptions to her come and go; an XML special in a
 * watcher's URI is escaped. */
static void test_presence_winfo(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(subscribe(f, "alice", "wi-1", 1, "", "presence.winfo", "Expires: 600\n"), 200);
    int n1 = last_notify_of(f, "presence.winfo");
    assert_true(n1 >= 0);
    struct doc d;
    winfo_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/w:watcherinfo/@state"), "full");
    assert_string_equal(xs(&d, "/w:watcherinfo/@version"), "0");
    assert_string_equal(xs(&d, "/w:watcherinfo/w:watcher-list/@resource"), "sip:alice@example.com");
    assert_string_equal(xs(&d, "/w:watcherinfo/w:watcher-list/@package"), "presence");
    assert_true(xn(&d, "count(//w:watcher)") == 0);
    doc_close(&d);
    answer_notify(f, n1, 200);

    /* A watcher subscribes to alice's presence: the list has it, active. */
    assert_int_equal(subscribe(f, "alice", "pw-1", 1, "", "presence", "Expires: 600\n"), 200);
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(last_response(f)->to.tag));
    int n2 = last_notify_of(f, "presence.winfo");
    assert_true(n2 > n1);
    winfo_doc(f, n2, &d);
    assert_string_equal(xs(&d, "/w:watcherinfo/@version"), "1");
    assert_true(xn(&d, "count(//w:watcher)") == 1);
    assert_string_equal(xs(&d, "//w:watcher"), "sip:watcher@example.com");
    assert_string_equal(xs(&d, "//w:watcher/@status"), "active");
    assert_string_equal(xs(&d, "//w:watcher/@event"), "subscribe");
    assert_string_equal(xs(&d, "//w:watcher/@id"), tag);
    doc_close(&d);
    answer_notify(f, n2, 200);
    /* bob's presence has its own list: alice's does not change. */
    assert_int_equal(subscribe(f, "bob", "pw-2", 1, "", "presence", "Expires: 600\n"), 200);
    assert_int_equal(last_notify_of(f, "presence.winfo"), n2);

    /* The watcher leaves: the list is empty again. */
    assert_int_equal(subscribe(f, "alice", "pw-1", 2, tag, "presence", "Expires: 0\n"), 200);
    int n3 = last_notify_of(f, "presence.winfo");
    assert_true(n3 > n2);
    winfo_doc(f, n3, &d);
    assert_true(xn(&d, "count(//w:watcher)") == 0);
    doc_close(&d);

    /* The builder escapes what a stranger wrote. */
    sbuf_t b;
    sbuf_init(&b);
    struct winfo_watcher w = {.id = "x\"1", .uri = "sip:a<b>&c@example.com", .status = "active", .event = "subscribe"};
    assert_int_equal(winfo_build(&b, 7, "sip:alice@example.com", "presence", &w, 1), 0);
    doc_open_ns(&d, b.data, b.len, "winfo", "w", "urn:ietf:params:xml:ns:watcherinfo");
    assert_string_equal(xs(&d, "//w:watcher"), "sip:a<b>&c@example.com");
    assert_string_equal(xs(&d, "//w:watcher/@id"), "x\"1");
    assert_string_equal(xs(&d, "/w:watcherinfo/@version"), "7");
    doc_close(&d);
    sbuf_free(&b);
}

/* The index of the last NOTIFY sent in the dialog of call_id, or -1. */
static int last_notify_in(struct fx *f, const char *call_id)
{
    int found = -1;
    for (int i = 0; (i = harness_find_sent(f->h, (size_t)i, "NOTIFY ")) >= 0; i++)
        if (str_eq_cstr(harness_sent_msg(f->h, (size_t)i)->call_id, call_id)) found = i;
    return found;
}

static uint64_t ended_rejected(struct fx *f)
{
    struct subs_stats st;
    subs_get_stats(f->s, &st);
    return st.ended_rejected;
}

/* presence_policy = allowlist: a change of alice's list (through the API,
 * presence_allow_set, or another node's, presence_allow_apply) ends at once
 * every presence subscription to her from a watcher it no longer allows
 * (terminated;reason=rejected, no document), and only those: not her own,
 * not one the new list still allows; her watcher-info lists the watcher
 * gone. */
static void test_presence_allow_change_ends(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.require_auth = true;
    f->cfg.subs.presence_policy = SUBS_PRESENCE_ALLOWLIST;
    start(f);
    struct presence *p = subs_presence(f->s);
    const char *bob[] = {"bob"}, *carol[] = {"carol"}, *both[] = {"bob", "carol"};
    assert_int_equal(presence_allow_set(p, "alice", bob, 1), 0);
    assert_int_equal(subscribe(f, "alice", "al-1", 1, "", "presence", "Expires: 600\n"), 401);
    struct auth_challenge ch;
    uint32_t nc = 1;
    answer_challenge(f, &ch, true, "bob", "secret-b", nc++);
    assert_int_equal(subscribe(f, "alice", "al-1", 2, "", "presence", "Expires: 600\n"), 200);
    answer_notify(f, last_notify_in(f, "al-1"), 200);
    answer_challenge(f, &ch, false, "alice", "secret-a", nc++);
    assert_int_equal(subscribe(f, "alice", "al-2", 1, "", "presence", "Expires: 600\n"), 200); /* herself */
    answer_notify(f, last_notify_in(f, "al-2"), 200);
    answer_challenge(f, &ch, false, "alice", "secret-a", nc++);
    assert_int_equal(subscribe(f, "alice", "al-3", 1, "", "presence.winfo", "Expires: 600\n"), 200);
    int w1 = last_notify_in(f, "al-3");
    struct doc d;
    winfo_doc(f, w1, &d);
    assert_true(xn(&d, "count(//w:watcher)") == 2);
    doc_close(&d);
    answer_notify(f, w1, 200);
    assert_int_equal(active(f), 3);

    /* a change that still allows bob ends nothing */
    size_t before = harness_sent_count(f->h);
    assert_int_equal(presence_allow_set(p, "alice", both, 2), 0);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    assert_int_equal(active(f), 3);

    /* through the API, bob taken out: his subscription ends now */
    assert_int_equal(presence_allow_set(p, "alice", carol, 1), 0);
    int n1 = last_notify_in(f, "al-1");
    assert_true(n1 >= (int)before);
    assert_true(notify_state_is(f, n1, "terminated;reason=rejected"));
    assert_int_equal(harness_sent_msg(f->h, (size_t)n1)->body.len, 0); /* no document for him */
    assert_int_equal(active(f), 2);
    assert_int_equal(ended_rejected(f), 1);
    assert_true(last_notify_in(f, "al-2") < (int)before); /* hers stays, untold */
    int w2 = last_notify_in(f, "al-3");
    assert_true(w2 > w1);
    winfo_doc(f, w2, &d);
    assert_true(xn(&d, "count(//w:watcher)") == 1);
    doc_close(&d);
    answer_notify(f, w2, 200);
    /* his next SUBSCRIBE: 403 */
    answer_challenge(f, &ch, false, "bob", "secret-b", nc++);
    assert_int_equal(subscribe(f, "alice", "al-4", 1, "", "presence", "Expires: 600\n"), 403);

    /* another node's list applied (here: none at all) ends his new one */
    assert_int_equal(presence_allow_set(p, "alice", bob, 1), 0);
    answer_challenge(f, &ch, false, "bob", "secret-b", nc++);
    assert_int_equal(subscribe(f, "alice", "al-5", 1, "", "presence", "Expires: 600\n"), 200);
    answer_notify(f, last_notify_in(f, "al-5"), 200);
    assert_int_equal(active(f), 3);
    assert_int_equal(presence_allow_apply(p, "alice", NULL, 0), PRESENCE_ALLOW_REMOVED);
    int n5 = last_notify_in(f, "al-5");
    assert_true(notify_state_is(f, n5, "terminated;reason=rejected"));
    assert_int_equal(active(f), 2);
    assert_int_equal(ended_rejected(f), 2);
    before = harness_sent_count(f->h);
    assert_int_equal(presence_allow_apply(p, "alice", NULL, 0), PRESENCE_ALLOW_UNCHANGED);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    assert_int_equal(active(f), 2); /* alice's own two */
    f->authz[0] = '\0';
}

/* PUBLISH (no auth in these tests) of alice's presence from 192.0.2.20:5062:
 * a one-tuple document with basic (NULL: no body) under if_match (NULL: an
 * initial one). Returns the status; the SIP-ETag answered goes to etag. */
static int publish_alice(struct fx *f, const char *basic, const char *if_match, char *etag, size_t cap)
{
    char body[512] = "", text[2048], cond[128] = "";
    if (basic)
        snprintf(body, sizeof(body),
                 "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                 "entity=\"sip:alice@example.com\"><tuple id=\"pc\"><status><basic>%s</basic></status>"
                 "</tuple></presence>",
                 basic);
    if (if_match) snprintf(cond, sizeof(cond), "SIP-If-Match: %s\n", if_match);
    uint32_t n = ++f->branch;
    snprintf(text, sizeof(text),
             "PUBLISH sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK-p%u\n"
             "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=p1\nTo: <sip:alice@example.com>\n"
             "Call-ID: pub-1\nCSeq: %u PUBLISH\nEvent: presence\nExpires: 600\n%s%s"
             "Content-Length: %zu\n\n%s",
             n, n, cond, basic ? "Content-Type: application/pidf+xml\n" : "", strlen(body), body);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    if (etag) {
        etag[0] = '\0';
        for (uint32_t k = 0; k < m->header_count; k++)
            if (str_ieq_cstr(m->headers[k].name, "SIP-ETag")) str_copy(etag, cap, str_trim(m->headers[k].value));
    }
    return harness_sent_status(f->h, (size_t)i);
}

/* "TUPLE-ID/BASIC" of the first tuple of the presence NOTIFY at i (in a static buffer). */
static const char *presence_of(struct fx *f, int i)
{
    static char out[1100];
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq_cstr(m->content_type, "application/pidf+xml"));
    struct doc d;
    doc_open_ns(&d, m->body.s, m->body.len, "pidf", "p", "urn:ietf:params:xml:ns:pidf");
    char id[520];
    snprintf(id, sizeof(id), "%s", xs(&d, "/p:presence/p:tuple[1]/@id"));
    snprintf(out, sizeof(out), "%s/%s", id, xs(&d, "/p:presence/p:tuple[1]/p:status/p:basic"));
    doc_close(&d);
    return out;
}

/* No binding, closed: a user's publications go with its last binding,
 * whatever took it (here a REGISTER with Expires: 0, as linphone sends 32 s
 * before it withdraws its PUBLISH), not with one binding of two; the
 * dropped tag no longer refreshes (412). */
static void test_presence_dropped_with_last_binding(void **state)
{
    struct fx *f = *state;
    start(f);
    register_alice(f, "sip:alice@192.0.2.20:5062", 600, 1);
    register_alice(f, "sip:alice@192.0.2.21:5062", 600, 2);
    char etag[64];
    assert_int_equal(publish_alice(f, "open", NULL, etag, sizeof(etag)), 200);
    assert_true(etag[0]);
    assert_int_equal(subscribe(f, "alice", "pl-1", 1, "", "presence", "Expires: 600\n"), 200);
    int n1 = last_notify_of(f, "presence");
    assert_true(n1 >= 0);
    assert_string_equal(presence_of(f, n1), "pc/open");
    answer_notify(f, n1, 200);

    /* One device unregisters: the other is still bound, the publication stays. */
    register_alice(f, "sip:alice@192.0.2.21:5062", 0, 3);
    int n2 = last_notify_of(f, "presence");
    assert_true(n2 > n1);
    assert_string_equal(presence_of(f, n2), "pc/open");
    answer_notify(f, n2, 200);
    char again[64];
    assert_int_equal(publish_alice(f, NULL, etag, again, sizeof(again)), 200); /* a refresh: still there */
    assert_true(again[0]);

    /* The last one unregisters without withdrawing: closed at once. */
    register_alice(f, "sip:alice@192.0.2.20:5062", 0, 4);
    int n3 = last_notify_of(f, "presence");
    assert_true(n3 > n2);
    assert_string_equal(presence_of(f, n3), "registration/closed");
    answer_notify(f, n3, 200);
    assert_int_equal(publish_alice(f, NULL, again, NULL, 0), 412);
    /* A late withdrawal changes nothing a watcher sees. */
    assert_int_equal(last_notify_of(f, "presence"), n3);
}

/* ---- the reg package across nodes: the hooks reg_nodes.c sets ---- */

struct fake_nodes {
    int watchers;
    char aor[64];
    bool pending;
    struct reg_remote remote[2];
    size_t n;
};

static void fake_watch(void *arg, const char *aor, bool on)
{
    struct fake_nodes *fn = arg;
    fn->watchers += on ? 1 : -1;
    snprintf(fn->aor, sizeof(fn->aor), "%s", aor);
}

static size_t fake_remote(void *arg, const char *aor, const struct reg_remote **out)
{
    struct fake_nodes *fn = arg;
    *out = fn->remote;
    return strcmp(aor, fn->aor) == 0 ? fn->n : 0;
}

static bool fake_pending(void *arg, const char *aor)
{
    (void)aor;
    return ((struct fake_nodes *)arg)->pending;
}

/* A first watcher's NOTIFY waits for the other nodes' contacts and lists
 * them; their changes go as partial NOTIFYs, version + 1 each; the
 * registration stays active while a binding is left on either side. */
static void test_reg_other_nodes(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_nodes fn = {.pending = true};
    struct subs_reg_hooks h = {.arg = &fn, .watch = fake_watch, .remote = fake_remote, .pending = fake_pending};
    subs_set_reg_hooks(f->s, &h);
    assert_int_equal(subscribe(f, "alice", "sub-n", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(fn.watchers, 1);
    assert_int_equal(last_notify(f), -1); /* waiting for the first read */
    int64_t wall = clock_wall_ms();
    fn.remote[0] = (struct reg_remote){.expires_wall_ms = wall + 120000, .q1000 = 500};
    snprintf(fn.remote[0].uri, sizeof(fn.remote[0].uri), "sip:alice@198.51.100.7:5060");
    snprintf(fn.remote[0].node, sizeof(fn.remote[0].node), "node-b");
    fn.n = 1;
    fn.pending = false;
    subs_reg_remote_changed(f->s, fn.aor, NULL, 0); /* the first read answered */
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    struct doc d;
    notify_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "0");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@198.51.100.7:5060");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@q"), "0.500");
    int left = atoi(xs(&d, "/r:reginfo/r:registration/r:contact/@expires"));
    assert_true(left > 110 && left <= 120);
    doc_close(&d);
    answer_notify(f, n1, 200);

    /* alice registers here too: partial, the registration active */
    register_alice(f, "sip:alice@192.0.2.20:5062", 300, 1);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    answer_notify(f, n2, 200);

    /* node-b died: its contact terminated/deactivated, still active (here) */
    struct reg_remote gone = fn.remote[0];
    fn.n = 0;
    struct reginfo_contact ch[4];
    size_t nch = reg_nodes_diff(&gone, 1, NULL, 0, wall, NULL, NULL, ch, 4);
    ch[0].event = "deactivated"; /* (the diff says unregistered without a liveness check) */
    subs_reg_remote_changed(f->s, fn.aor, ch, nch);
    int n3 = last_notify(f);
    assert_true(n3 > n2);
    notify_doc(f, n3, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "partial");
    assert_string_equal(xs(&d, "/r:reginfo/@version"), "2");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@198.51.100.7:5060");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), "deactivated");
    doc_close(&d);
    answer_notify(f, n3, 200);

    /* nothing that changed: no NOTIFY */
    subs_reg_remote_changed(f->s, fn.aor, NULL, 0);
    assert_int_equal(last_notify(f), n3);

    /* a contact of another node comes back; the local one goes: the
     * registration is still active (the other node's) */
    fn.n = 1;
    nch = reg_nodes_diff(NULL, 0, fn.remote, 1, wall, NULL, NULL, ch, 4);
    subs_reg_remote_changed(f->s, fn.aor, ch, nch);
    int n4 = last_notify(f);
    assert_true(n4 > n3);
    answer_notify(f, n4, 200);
    register_alice(f, "sip:alice@192.0.2.20:5062", 0, 2);
    int n5 = last_notify(f);
    notify_doc(f, n5, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@192.0.2.20:5062");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), "terminated");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    doc_close(&d);
    answer_notify(f, n5, 200);

    /* a second watcher while a first read is pending, then the hooks go:
     * it gets its NOTIFY with this node's view (nothing bound: init) */
    fn.pending = true;
    assert_int_equal(subscribe(f, "alice", "sub-m", 1, "", "reg", "Expires: 600\n"), 200);
    assert_int_equal(fn.watchers, 2);
    int before = last_notify(f);
    subs_set_reg_hooks(f->s, NULL);
    int n6 = last_notify(f);
    assert_true(n6 > before);
    notify_doc(f, n6, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "init");
    doc_close(&d);
    /* set again: each reg subscription held is counted once */
    fn.watchers = 0;
    subs_set_reg_hooks(f->s, &h);
    assert_int_equal(fn.watchers, 2);
}

/* ---- the follower (reg_nodes.c) on a fake cluster ---- */

struct fake_read {
    cluster_read_cb cb;
    void *arg;
    bool done;
    char aor[64];
};
struct fake_io {
    struct fake_read q[160];
    size_t n;
    int refuse;          /* the next reads are refused with this */
    bool b_alive;
    int64_t wall;
};

static int fio_read(void *arg, const char *aor, cluster_read_cb cb, void *cb_arg, struct cluster_lookup **h)
{
    struct fake_io *io = arg;
    if (io->refuse) return io->refuse;
    assert_true(io->n < 160);
    struct fake_read *r = &io->q[io->n++];
    *r = (struct fake_read){.cb = cb, .arg = cb_arg};
    snprintf(r->aor, sizeof(r->aor), "%s", aor);
    *h = (struct cluster_lookup *)r;
    return 0;
}

static void fio_cancel(void *arg, struct cluster_lookup *h)
{
    (void)arg;
    ((struct fake_read *)h)->done = true;
}

static bool fio_alive(void *arg, const char *node) { return strcmp(node, "node-b") || ((struct fake_io *)arg)->b_alive; }
static int64_t fio_wall(void *arg) { return ((struct fake_io *)arg)->wall; }

static size_t in_flight(const struct fake_io *io)
{
    size_t k = 0;
    for (size_t i = 0; i < io->n; i++) k += !io->q[i].done;
    return k;
}

/* Answers read i with an HGETALL of n field/value pairs (kv), or status < 0. */
static void fio_answer(struct fake_io *io, size_t i, int status, const char *const *kv, size_t n)
{
    redisReply e[8], *ptr[8];
    assert_true(2 * n <= 8 && i < io->n && !io->q[i].done);
    for (size_t k = 0; k < 2 * n; k++) {
        e[k] = (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)kv[k], .len = strlen(kv[k])};
        ptr[k] = &e[k];
    }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2 * n, .element = ptr};
    io->q[i].done = true;
    io->q[i].cb(io->q[i].arg, status, status < 0 ? NULL : &arr);
}

static void contact_is(struct fx *f, int i, const char *uri, const char *state, const char *event)
{
    struct doc d;
    notify_doc(f, i, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), uri);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@state"), state);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/@event"), event);
    doc_close(&d);
}

/* A fetch (Expires: 0) of reg, then dialog, for an AoR no watcher here
 * follows: it starts the read of the other nodes' state and its answer (the
 * terminated NOTIFY) lists them once the read returns; nothing is left
 * watched. With the view held it is answered at once; a fetch still waiting
 * when the hooks go gets this node's view. */
static void test_fetch_across_nodes(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_nodes fn = {.pending = true};
    struct subs_reg_hooks h = {.arg = &fn, .watch = fake_watch, .remote = fake_remote, .pending = fake_pending};
    subs_set_reg_hooks(f->s, &h);
    assert_int_equal(subscribe(f, "alice", "fx-1", 1, "", "reg", "Expires: 0\n"), 200);
    assert_int_equal(fn.watchers, 1); /* a read asked for */
    assert_int_equal(last_notify(f), -1);
    fn.remote[0] = (struct reg_remote){.expires_wall_ms = clock_wall_ms() + 120000, .q1000 = 1000};
    snprintf(fn.remote[0].uri, sizeof(fn.remote[0].uri), "sip:alice@198.51.100.8:5060");
    snprintf(fn.remote[0].node, sizeof(fn.remote[0].node), "node-b");
    fn.n = 1;
    fn.pending = false;
    subs_reg_remote_changed(f->s, "alice", NULL, 0); /* the read answered */
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    assert_true(notify_state_is(f, n1, "terminated;reason=timeout"));
    struct doc d;
    notify_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "active");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@198.51.100.8:5060");
    doc_close(&d);
    assert_int_equal(fn.watchers, 0);
    assert_int_equal(active(f), 0);
    /* no read pending (a view held): answered at once, with it */
    assert_int_equal(subscribe(f, "alice", "fx-2", 1, "", "reg", "Expires: 0\n"), 200);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    assert_true(notify_state_is(f, n2, "terminated;reason=timeout"));
    notify_doc(f, n2, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@198.51.100.8:5060");
    doc_close(&d);
    assert_int_equal(fn.watchers, 0);
    /* waiting when the hooks go: this node's view */
    fn.pending = true;
    assert_int_equal(subscribe(f, "alice", "fx-3", 1, "", "reg", "Expires: 0\n"), 200);
    assert_int_equal(last_notify(f), n2);
    subs_set_reg_hooks(f->s, NULL);
    int n3 = last_notify(f);
    assert_true(n3 > n2);
    assert_true(notify_state_is(f, n3, "terminated;reason=timeout"));
    notify_doc(f, n3, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "init");
    doc_close(&d);
    assert_int_equal(active(f), 0);

    /* dialog */
    struct fake_dlg fd = {.pending = true};
    struct subs_dialog_hooks dh = {.arg = &fd, .watch = fdlg_watch, .shared = fdlg_shared, .changed = fdlg_changed,
                                   .remote = fdlg_remote, .pending = fdlg_pending};
    subs_set_dialog_hooks(f->s, &dh);
    assert_int_equal(subscribe(f, "bob", "fx-4", 1, "", "dialog", "Expires: 0\n"), 200);
    assert_int_equal(fd.watchers, 1);
    assert_int_equal(last_notify(f), n3);
    fd.remote[0] = remote_call("00000000000000dd", DIALOG_EARLY);
    fd.n = 1;
    fd.pending = false;
    subs_dialog_remote_changed(f->s, "bob", &fd.remote[0].e, 1);
    int n4 = last_notify(f);
    assert_true(n4 > n3);
    assert_int_equal(harness_count_sent(f->h, (size_t)n3 + 1, "NOTIFY "), 1); /* the answer only, no partial */
    assert_true(notify_state_is(f, n4, "terminated;reason=timeout"));
    assert_string_equal(notify_xs(f, n4, "/*/@state"), "full");
    assert_string_equal(notify_xs(f, n4, DLG "/@id"), "00000000000000dd");
    assert_int_equal(fd.watchers, 0);
    assert_int_equal(active(f), 0);
    subs_set_dialog_hooks(f->s, NULL);
}

/* One read in flight per AoR, a burst of messages folded into one more
 * read; unreadable and own records skipped; a failed read retried, what
 * it held kept until its expiry; a node's death; the expiry read; a
 * refused read retried; a first watcher not kept waiting by a refusal. */
static void test_reg_follower(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_io io = {.b_alive = true, .wall = 1700000000000LL};
    struct reg_nodes_io rio = {.arg = &io, .read = fio_read, .cancel = fio_cancel, .alive = fio_alive,
                               .wall_ms = fio_wall};
    struct reg_nodes_deps rd = {.timers = f->h->timers, .subs = f->s, .node_id = "node-a", .io = &rio};
    struct reg_nodes *rn = reg_nodes_new(&rd);
    assert_non_null(rn);
    struct reg_nodes_stats st;

    assert_int_equal(subscribe(f, "alice", "sub-f", 1, "", "reg", "Expires: 600\n"), 200);
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(last_response(f)->to.tag));
    assert_int_equal(io.n, 1);
    assert_int_equal(last_notify(f), -1); /* the first NOTIFY waits for the read */
    const char *aor = io.q[0].aor;
    for (int i = 0; i < 3; i++) reg_nodes_changed(rn, aor);
    assert_int_equal(in_flight(&io), 1);
    reg_nodes_get_stats(rn, &st);
    assert_int_equal(st.coalesced, 1);
    assert_int_equal(st.followed, 1);

    char rb[128], ra[128];
    snprintf(rb, sizeof(rb), "{\"node\":\"node-b\",\"expires\":%lld}", (long long)io.wall + 60000);
    snprintf(ra, sizeof(ra), "{\"node\":\"node-a\",\"expires\":%lld}", (long long)io.wall + 60000);
    const char *kv1[] = {"sip:alice@198.51.100.7:5060", rb, "sip:alice@192.0.2.99", ra, "junk", "x"};
    fio_answer(&io, 0, 0, kv1, 3);
    int n1 = last_notify(f);
    assert_true(n1 >= 0);
    struct doc d;
    notify_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "count(/r:reginfo/r:registration/r:contact)"), "1"); /* node-a's is this node's */
    doc_close(&d);
    contact_is(f, n1, "sip:alice@198.51.100.7:5060", "active", "registered");
    assert_int_equal(io.n, 2); /* the burst: one more read */
    fio_answer(&io, 1, 0, kv1, 3);
    assert_int_equal(last_notify(f), n1); /* the same: nothing to tell */
    answer_notify(f, n1, 200);
    reg_nodes_get_stats(rn, &st);
    assert_int_equal(st.reads, 2);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.contacts, 1);

    /* Redis does not answer: the contact stays; retried 1 s later */
    reg_nodes_changed(rn, aor);
    fio_answer(&io, 2, -ETIMEDOUT, NULL, 0);
    assert_int_equal(last_notify(f), n1);
    assert_int_equal(in_flight(&io), 0);
    harness_advance(f->h, 1000);
    assert_int_equal(in_flight(&io), 1);
    /* node-b died, its binding reaped */
    io.b_alive = false;
    fio_answer(&io, 3, 0, NULL, 0);
    int n2 = last_notify(f);
    assert_true(n2 > n1);
    contact_is(f, n2, "sip:alice@198.51.100.7:5060", "terminated", "deactivated");
    notify_doc(f, n2, &d);
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/@state"), "terminated");
    doc_close(&d);
    answer_notify(f, n2, 200);

    /* back, for 5 s; then its expiry passes with Redis silent: expired */
    io.b_alive = true;
    snprintf(rb, sizeof(rb), "{\"node\":\"node-b\",\"expires\":%lld}", (long long)io.wall + 5000);
    const char *kv2[] = {"sip:alice@198.51.100.7:5060", rb};
    reg_nodes_changed(rn, aor);
    fio_answer(&io, 4, 0, kv2, 1);
    int n3 = last_notify(f);
    assert_true(n3 > n2);
    contact_is(f, n3, "sip:alice@198.51.100.7:5060", "active", "registered");
    answer_notify(f, n3, 200);
    size_t before = io.n;
    io.wall += 6000;
    harness_advance(f->h, 5300); /* the expiry read */
    assert_int_equal(io.n, before + 1);
    fio_answer(&io, before, -EIO, NULL, 0);
    int n4 = last_notify(f);
    assert_true(n4 > n3);
    contact_is(f, n4, "sip:alice@198.51.100.7:5060", "terminated", "expired");
    answer_notify(f, n4, 200);

    /* refused: retried, 1 s then 2 s */
    harness_advance(f->h, 60000); /* (the failure's retry answered below) */
    for (size_t i = 0; i < io.n; i++)
        if (!io.q[i].done) fio_answer(&io, i, 0, NULL, 0);
    io.refuse = -ENOBUFS;
    reg_nodes_changed(rn, aor);
    harness_advance(f->h, 1000);
    reg_nodes_get_stats(rn, &st);
    assert_int_equal(st.refused, 2);
    io.refuse = 0;
    before = io.n;
    harness_advance(f->h, 2000);
    assert_int_equal(io.n, before + 1);
    fio_answer(&io, before, 0, NULL, 0);

    /* unsubscribed: followed no more */
    assert_int_equal(subscribe(f, "alice", "sub-f", 2, tag, "reg", "Expires: 0\n"), 200);
    reg_nodes_get_stats(rn, &st);
    assert_int_equal(st.followed, 0);
    assert_int_equal(st.contacts, 0);

    /* a first watcher whose read is refused gets its NOTIFY at once */
    io.refuse = -ENOBUFS;
    int before_n = last_notify(f);
    assert_int_equal(subscribe(f, "alice", "sub-g", 1, "", "reg", "Expires: 600\n"), 200);
    assert_true(last_notify(f) > before_n);
    reg_nodes_free(rn);
}

/* At most REG_NODES_INFLIGHT_MAX reads in flight over all AoRs: the others
 * wait in order, their first NOTIFYs with them. */
static void test_reg_follower_queue(void **state)
{
    struct fx *f = *state;
    f->cfg.subs.max_per_subscriber = 0; /* one watcher of them all */
    start(f);
    struct fake_io io = {.b_alive = true, .wall = 1700000000000LL};
    struct reg_nodes_io rio = {.arg = &io, .read = fio_read, .cancel = fio_cancel, .alive = fio_alive,
                               .wall_ms = fio_wall};
    struct reg_nodes_deps rd = {.timers = f->h->timers, .subs = f->s, .node_id = "node-a", .io = &rio};
    struct reg_nodes *rn = reg_nodes_new(&rd);
    assert_non_null(rn);
    enum { USERS = REG_NODES_INFLIGHT_MAX + 6 };
    for (int i = 0; i < USERS; i++) {
        char name[16], cid[16];
        snprintf(name, sizeof(name), "u%d", i);
        snprintf(cid, sizeof(cid), "q-%d", i);
        harness_add_user(f->h, f->users, name, "pw");
        assert_int_equal(subscribe(f, name, cid, 1, "", "reg", "Expires: 600\n"), 200);
    }
    struct reg_nodes_stats st;
    reg_nodes_get_stats(rn, &st);
    assert_int_equal(io.n, REG_NODES_INFLIGHT_MAX);
    assert_int_equal(st.queued, 6);
    assert_int_equal(last_notify(f), -1); /* every first NOTIFY waits for its read */
    reg_nodes_changed(rn, NULL);          /* the channel's return: nothing more in flight */
    assert_int_equal(in_flight(&io), REG_NODES_INFLIGHT_MAX);
    fio_answer(&io, 0, 0, NULL, 0);
    assert_int_equal(in_flight(&io), REG_NODES_INFLIGHT_MAX); /* one answered, the next queued one sent */
    for (size_t i = 0; i < io.n; i++)
        if (!io.q[i].done) fio_answer(&io, i, 0, NULL, 0);
    assert_int_equal(in_flight(&io), 0);
    size_t notifies = 0;
    for (int i = 0; (i = harness_find_sent(f->h, (size_t)i, "NOTIFY ")) >= 0; i++) notifies++;
    assert_int_equal(notifies, USERS);
    reg_nodes_free(rn);
}

/* ---- presence across nodes: the first NOTIFY after the first read ---- */

/* The presence mirror as presence.c sees it ([redis] mirror_presence): it
 * follows the AoRs watched here (watch) and says whether the first read of
 * one is still out (pending, for every AoR followed while set). */
struct fake_pmirror {
    int followed;
    bool pending;
};

static void fpm_watch(void *arg, const char *aor, bool on)
{
    (void)aor;
    ((struct fake_pmirror *)arg)->followed += on ? 1 : -1;
}

static bool fpm_pending(void *arg, const char *aor)
{
    (void)aor;
    struct fake_pmirror *m = arg;
    return m->pending && m->followed > 0;
}

#define RB_OPEN                                                                                                    \
    "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.com\">"      \
    "<tuple id=\"rb\"><status><basic>open</basic></status></tuple></presence>"

/* Another node's publication of aor (basic open, tuple "rb") as the mirror
 * reads it from Redis, given to presence.c. */
static void remote_open(struct fx *f, const char *aor)
{
    int64_t now = clock_wall_ms();
    struct presence_shared_pub pub = {.id = "node-b/1", .node = "node-b", .expires_wall_ms = now + 600000,
                                      .set_wall_ms = now, .version = 1, .body = RB_OPEN, .len = strlen(RB_OPEN),
                                      .pid = "0123456789abcdef0123456789abcdef"};
    assert_int_equal(presence_remote_set(subs_presence(f->s), aor, &pub, 1, now), 0);
}

/* A presence watcher of an AoR this node did not follow yet gets ONE first
 * NOTIFY, once the mirror's first read answers, carrying what it read (here
 * another node's open), not this node's view (closed) followed by the rest;
 * its presence.winfo lists it at once; a change meanwhile (the read's own
 * on_change) is not sent before it; nothing more until the state changes.
 * A second watcher of a followed AoR is told at once. A read that failed
 * (its deadline): this node's view. A fetch (Expires: 0) of an AoR nobody
 * watches waits for the read too and leaves nothing followed; a refresh
 * while waiting sends nothing of its own; a subscription taken over from a
 * dead node waits like a new one; the mirror going releases a waiting
 * watcher with this node's view. */
static void test_presence_first_read(void **state)
{
    struct fx *f = *state;
    start(f);
    struct presence *p = subs_presence(f->s);
    struct fake_pmirror fm = {.pending = true};
    struct presence_mirror_hooks h = {.arg = &fm, .watch = fpm_watch, .pending = fpm_pending};
    presence_set_mirror(p, &h, 100);
    assert_int_equal(subscribe(f, "alice", "pf-w", 1, "", "presence.winfo", "Expires: 600\n"), 200);
    int w1 = last_notify_in(f, "pf-w");
    assert_true(w1 >= 0);
    answer_notify(f, w1, 200);

    /* a first watcher of alice: 200, its NOTIFY waits for the read */
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subscribe(f, "alice", "pf-1", 1, "", "presence", "Expires: 600\n"), 200);
    assert_int_equal(fm.followed, 1);
    assert_int_equal(last_notify_in(f, "pf-1"), -1);
    int w2 = last_notify_in(f, "pf-w"); /* her watcher list has it at once */
    assert_true(w2 > w1);
    struct doc d;
    winfo_doc(f, w2, &d);
    assert_true(xn(&d, "count(//w:watcher)") == 1);
    assert_string_equal(xs(&d, "//w:watcher/@status"), "active");
    doc_close(&d);
    answer_notify(f, w2, 200);
    /* the read's answer: another node's publication (its on_change tells
     * nobody waiting), then the read done: one NOTIFY with it */
    remote_open(f, "alice");
    assert_int_equal(last_notify_in(f, "pf-1"), -1);
    fm.pending = false;
    presence_first_read_done(p, "alice");
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 2); /* winfo's, and this one */
    int n1 = last_notify_in(f, "pf-1");
    assert_true(n1 >= 0);
    assert_string_equal(presence_of(f, n1), "rb/open");
    assert_true(notify_state_is(f, n1, "active;expires=600"));
    answer_notify(f, n1, 200);
    /* the same read again, and a read done with nobody waiting: nothing */
    before = harness_sent_count(f->h);
    remote_open(f, "alice");
    presence_first_read_done(p, "alice");
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    /* a second watcher of alice, followed and read: at once, with it */
    assert_int_equal(subscribe(f, "alice", "pf-2", 1, "", "presence", "Expires: 600\n"), 200);
    int n2 = last_notify_in(f, "pf-2");
    assert_true(n2 >= 0);
    assert_string_equal(presence_of(f, n2), "rb/open");
    answer_notify(f, n2, 200);
    answer_notify(f, last_notify_in(f, "pf-w"), 200);

    /* a fetch of bob, whom nobody watches here: it waits for the read */
    fm.pending = true;
    before = harness_sent_count(f->h);
    assert_int_equal(subscribe(f, "bob", "pf-3", 1, "", "presence", "Expires: 0\n"), 200);
    assert_int_equal(fm.followed, 2);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    remote_open(f, "bob");
    fm.pending = false;
    presence_first_read_done(p, "bob");
    int n3 = last_notify_in(f, "pf-3");
    assert_true(n3 >= 0);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 1); /* alice's winfo not told */
    assert_true(notify_state_is(f, n3, "terminated;reason=timeout"));
    assert_string_equal(presence_of(f, n3), "rb/open");
    assert_int_equal(fm.followed, 1); /* bob no longer followed, his copy dropped */
    assert_int_equal(active(f), 3);

    /* the read failed (its deadline passed): bob's watcher gets this node's
     * view; a refresh meanwhile sends nothing of its own */
    fm.pending = true;
    before = harness_sent_count(f->h);
    assert_int_equal(subscribe(f, "bob", "pf-4", 1, "", "presence", "Expires: 600\n"), 200);
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(last_response(f)->to.tag));
    assert_int_equal(subscribe(f, "bob", "pf-4", 2, tag, "presence", "Expires: 600\n"), 200);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    fm.pending = false;
    presence_first_read_done(p, "bob");
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 1);
    int n4 = last_notify_in(f, "pf-4");
    assert_string_equal(presence_of(f, n4), "registration/closed");
    answer_notify(f, n4, 200);
    assert_int_equal(subscribe(f, "bob", "pf-4", 3, tag, "presence", "Expires: 0\n"), 200);
    answer_notify(f, last_notify_in(f, "pf-4"), 200);

    /* a subscription to bob taken over from a dead node waits the same */
    fm.pending = true;
    int64_t now = clock_wall_ms();
    struct store_subscription row = {.call_id = "pf-5", .local_tag = "adopted5", .remote_tag = "f1",
                                     .event = "presence", .aor = "bob", .subscriber = "sip:watcher@example.com",
                                     .target = "sip:watcher@192.0.2.9:5080", .routes = "", .remote = "192.0.2.9:5080",
                                     .transport = "udp", .expires_at = now + 600000, .local_cseq = 3,
                                     .remote_cseq = 2, .version = 1};
    before = harness_sent_count(f->h);
    assert_int_equal(subs_adopt(f->s, &row, now), 0);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    remote_open(f, "bob");
    fm.pending = false;
    presence_first_read_done(p, "bob");
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 1);
    int n5 = last_notify_in(f, "pf-5");
    assert_string_equal(presence_of(f, n5), "rb/open");
    answer_notify(f, n5, 200);

    /* waiting when the mirror goes: this node's view (what it held) */
    fm.pending = true;
    assert_int_equal(subscribe(f, "alice", "pf-6", 1, "", "presence", "Expires: 600\n"), 200);
    assert_int_equal(last_notify_in(f, "pf-6"), -1);
    presence_set_mirror(p, NULL, 0);
    int n6 = last_notify_in(f, "pf-6");
    assert_true(n6 >= 0);
    assert_string_equal(presence_of(f, n6), "rb/open");
}

/* A reg subscription taken over from a dead node, of an AoR this node does
 * not follow yet: its first NOTIFY waits for the first read of the other
 * nodes' contacts and lists them, as a new watcher's does. */
static void test_adopt_waits_first_read(void **state)
{
    struct fx *f = *state;
    start(f);
    struct fake_nodes fn = {.pending = true};
    struct subs_reg_hooks h = {.arg = &fn, .watch = fake_watch, .remote = fake_remote, .pending = fake_pending};
    subs_set_reg_hooks(f->s, &h);
    int64_t now = clock_wall_ms();
    struct store_subscription row = {.call_id = "ad-1", .local_tag = "adopted1", .remote_tag = "f1", .event = "reg",
                                     .aor = "alice", .subscriber = "sip:watcher@example.com",
                                     .target = "sip:watcher@192.0.2.9:5080", .routes = "", .remote = "192.0.2.9:5080",
                                     .transport = "udp", .expires_at = now + 600000, .local_cseq = 3,
                                     .remote_cseq = 2, .version = 1};
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subs_adopt(f->s, &row, now), 0);
    assert_int_equal(fn.watchers, 1); /* the read asked for */
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0);
    fn.remote[0] = (struct reg_remote){.expires_wall_ms = now + 120000, .q1000 = 1000};
    snprintf(fn.remote[0].uri, sizeof(fn.remote[0].uri), "sip:alice@198.51.100.8:5060");
    snprintf(fn.remote[0].node, sizeof(fn.remote[0].node), "node-b");
    fn.n = 1;
    fn.pending = false;
    subs_reg_remote_changed(f->s, "alice", NULL, 0);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 1);
    int n1 = last_notify(f);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)n1)->call_id, "ad-1"));
    struct doc d;
    notify_doc(f, n1, &d);
    assert_string_equal(xs(&d, "/r:reginfo/@state"), "full");
    assert_string_equal(xs(&d, "/r:reginfo/r:registration/r:contact/r:uri"), "sip:alice@198.51.100.8:5060");
    doc_close(&d);
    subs_set_reg_hooks(f->s, NULL);
}

/* The real presence mirror with a Redis Cluster nobody answers
 * (127.0.0.1:1): a new watcher's first read is out, so its NOTIFY waits,
 * but no longer than the read's deadline ([redis] timeout_ms, the client's
 * per-command deadline): then one NOTIFY with this node's view. */
static void test_presence_first_read_deadline(void **state)
{
    struct fx *f = *state;
    start(f);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct redis_config cfg = {.mirror_presence = true, .timeout_ms = 500, .max_pending = 100};
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t:");
    int err = 0;
    struct presence_mirror *m = presence_mirror_new(&loop, f->h->timers, f->s, &cfg, "node-a", &err);
    assert_non_null(m);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subscribe(f, "alice", "pd-1", 1, "", "presence", "Expires: 600\n"), 200);
    struct presence_mirror_stats st;
    presence_mirror_get_stats(m, &st);
    assert_int_equal(st.followed, 1);
    for (int i = 0; i < 4; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        harness_advance(f->h, 100);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 0); /* 400 ms: still waiting */
    harness_advance(f->h, 200);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(harness_count_sent(f->h, before, "NOTIFY "), 1);
    int n1 = last_notify_in(f, "pd-1");
    assert_string_equal(presence_of(f, n1), "registration/closed");
    presence_mirror_get_stats(m, &st);
    assert_true(st.fetch_failures >= 1);
    answer_notify(f, n1, 200);
    /* read (and failed) once: the next watcher is told at once */
    assert_int_equal(subscribe(f, "alice", "pd-2", 1, "", "presence", "Expires: 600\n"), 200);
    assert_true(last_notify_in(f, "pd-2") >= 0);
    presence_mirror_free(m);
    for (int i = 0; i < 10; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reginfo_full_parses_back),
        cmocka_unit_test(test_reginfo_partial_terminated),
        cmocka_unit_test(test_clamp_expires),
        cmocka_unit_test(test_event_package),
        cmocka_unit_test_setup_teardown(test_subscription_life, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reg_other_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reg_follower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reg_follower_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_failure_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_count_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_loss_deactivated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_notify_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_user_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reg_any_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialog_package, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialog_other_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialog_first_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_allow_change_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialog_follower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_summary_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_winfo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_dropped_with_last_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_first_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_first_read_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_waits_first_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_hooks, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
