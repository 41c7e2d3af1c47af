/* test_presence.c — the presence package's state as specified: PIDF
 * documents checked (RFC 3863), PUBLISH entity tags through their life
 * (RFC 3903 §6: initial, refresh, modify, remove, expiry, 412), the caps,
 * the composition a watcher gets (all tuples, newest first; derived from
 * registration with no publication), and who may watch (presence_policy).
 * Documents are read back with libxml2 XPath, never by substring. Time is
 * a fake clock driven through the timer service. The allow lists as the
 * nodes share them ([redis] mirror_presence_allow, subs/allow_mirror.h):
 * another node's list applied, what the API's changes tell the mirror, the
 * record and what a node refuses to read from Redis (the sharing between
 * real nodes: tests/peers/test_presence_nodes.sh, section 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "base/sbuf.h"
#include "base/timer.h"
#include "subs/allow_mirror.h"
#include "subs/pidf.h"
#include "subs/presence.h"
#include "subs/subs_config.h"

#define ENTITY "sip:alice@example.com"

static char *pidf_doc(const char *tuple_id, const char *basic)
{
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\">"
             "<tuple id=\"%s\"><status><basic>%s</basic></status><contact>sip:alice@192.0.2.1</contact></tuple>"
             "</presence>",
             tuple_id, basic);
    return b;
}

/* The string value of xpath over doc (namespace prefix p: PIDF), in out. */
static const char *xp(const sbuf_t *doc, const char *xpath, char *out, size_t cap)
{
    out[0] = '\0';
    xmlDocPtr d = xmlReadMemory(doc->data, (int)doc->len, NULL, NULL, XML_PARSE_NONET);
    assert_non_null(d);
    xmlXPathContextPtr x = xmlXPathNewContext(d);
    xmlXPathRegisterNs(x, (const xmlChar *)"p", (const xmlChar *)PIDF_NS);
    xmlXPathRegisterNs(x, (const xmlChar *)"rpid", (const xmlChar *)"urn:ietf:params:xml:ns:pidf:rpid");
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)xpath, x);
    assert_non_null(o);
    xmlChar *s = xmlXPathCastToString(o);
    snprintf(out, cap, "%s", (const char *)s);
    xmlFree(s);
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    xmlFreeDoc(d);
    return out;
}

/* ---- PIDF documents ---- */

static void expect_invalid(const char *body, const char *why_expected)
{
    const char *why = NULL;
    assert_int_equal(pidf_validate(body, strlen(body), &why), -EINVAL);
    assert_string_equal(why, why_expected);
}

static void test_pidf_valid(void **state)
{
    (void)state;
    const char *why = NULL;
    const char *d = pidf_doc("t1", "open");
    assert_int_equal(pidf_validate(d, strlen(d), &why), 0);
    int tuples = -1, open = -1;
    assert_int_equal(pidf_summary(d, strlen(d), &tuples, &open), 0);
    assert_int_equal(tuples, 1);
    assert_int_equal(open, 1);
    /* A prefixed PIDF namespace and RPID extensions are PIDF too. */
    const char *rpid = "<p:presence xmlns:p=\"urn:ietf:params:xml:ns:pidf\" "
                       "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" "
                       "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"sip:bob@example.com\">"
                       "<p:tuple id=\"a\"><p:status><p:basic> closed </p:basic></p:status></p:tuple>"
                       "<dm:person id=\"p1\"><rpid:activities><rpid:away/></rpid:activities></dm:person>"
                       "</p:presence>";
    assert_int_equal(pidf_summary(rpid, strlen(rpid), &tuples, &open), 0);
    assert_int_equal(tuples, 1);
    assert_int_equal(open, 0);
}

static void test_pidf_invalid(void **state)
{
    (void)state;
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple>", "not well-formed XML");
    expect_invalid("<presence entity=\"x\"/>", "the root is not a PIDF <presence>");
    expect_invalid("<reginfo xmlns=\"urn:ietf:params:xml:ns:pidf\"/>", "the root is not a PIDF <presence>");
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"/>", "<presence> has no entity");
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple><status/></tuple></presence>",
                   "a tuple has no id");
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple id=\"a\"/></presence>",
                   "a tuple has no status");
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple id=\"a\"><status><basic>"
                   "busy</basic></status></tuple></presence>",
                   "basic status is neither open nor closed");
    expect_invalid("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\">"
                   "<tuple id=\"a\"><status/></tuple><tuple id=\"a\"><status/></tuple></presence>",
                   "two tuples share an id");
    /* Entities are how a small document becomes a huge one: no DTD at all. */
    expect_invalid("<?xml version=\"1.0\"?><!DOCTYPE presence [<!ENTITY a \"aaaa\">]>"
                   "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"/>",
                   "a DTD is not allowed");
    const char *why = NULL;
    assert_int_equal(pidf_validate("", 0, &why), -EINVAL);
    assert_string_equal(why, "empty body");
    char *big = malloc(PIDF_MAX_BODY + 2);
    memset(big, ' ', PIDF_MAX_BODY + 1);
    big[PIDF_MAX_BODY + 1] = '\0';
    assert_int_equal(pidf_validate(big, PIDF_MAX_BODY + 1, &why), -EMSGSIZE);
    free(big);
}

static void test_pidf_too_many_tuples(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\">");
    for (int i = 0; i <= PIDF_MAX_TUPLES; i++) sbuf_printf(&b, "<tuple id=\"t%d\"><status/></tuple>", i);
    sbuf_append_cstr(&b, "</presence>");
    const char *why = NULL;
    assert_int_equal(pidf_validate(b.data, b.len, &why), -EINVAL);
    assert_string_equal(why, "too many tuples");
    sbuf_free(&b);
}

static void test_pidf_compose_keeps_namespaces(void **state)
{
    (void)state;
    const char *rpid = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                       "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:alice@192.0.2.1\">"
                       "<tuple id=\"pc\"><status><basic>open</basic></status>"
                       "<rpid:activities><rpid:on-the-phone/></rpid:activities></tuple></presence>";
    const char *phone = pidf_doc("desk", "closed");
    /* Same id in both: the first document (the newest) keeps it. */
    const char *dup = pidf_doc("pc", "closed");
    const char *docs[] = {rpid, phone, dup};
    size_t lens[] = {strlen(rpid), strlen(phone), strlen(dup)};
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(pidf_compose(&out, ENTITY, docs, lens, 3), 0);
    char v[256];
    assert_string_equal(xp(&out, "string(/p:presence/@entity)", v, sizeof(v)), ENTITY);
    assert_string_equal(xp(&out, "count(/p:presence/p:tuple)", v, sizeof(v)), "2");
    assert_string_equal(xp(&out, "string(/p:presence/p:tuple[@id='pc']/p:status/p:basic)", v, sizeof(v)), "open");
    assert_string_equal(xp(&out, "count(//p:tuple[@id='pc']/rpid:activities/rpid:on-the-phone)", v, sizeof(v)), "1");
    assert_string_equal(xp(&out, "string(/p:presence/p:tuple[@id='desk']/p:status/p:basic)", v, sizeof(v)),
                        "closed");
    const char *why = NULL;
    assert_int_equal(pidf_validate(out.data, out.len, &why), 0);
    sbuf_free(&out);
}

static void test_pidf_derived(void **state)
{
    (void)state;
    sbuf_t out;
    sbuf_init(&out);
    char v[256];
    assert_int_equal(pidf_derived(&out, ENTITY, true, "sip:alice@192.0.2.1:5060;ob"), 0);
    assert_string_equal(xp(&out, "string(/p:presence/p:tuple/p:status/p:basic)", v, sizeof(v)), "open");
    assert_string_equal(xp(&out, "string(/p:presence/p:tuple/p:contact)", v, sizeof(v)), "sip:alice@192.0.2.1:5060;ob");
    sbuf_clear(&out);
    assert_int_equal(pidf_derived(&out, "sip:a&b@example.com", false, NULL), 0);
    assert_string_equal(xp(&out, "string(/p:presence/p:tuple/p:status/p:basic)", v, sizeof(v)), "closed");
    assert_string_equal(xp(&out, "string(/p:presence/@entity)", v, sizeof(v)), "sip:a&b@example.com");
    assert_string_equal(xp(&out, "count(/p:presence/p:tuple/p:contact)", v, sizeof(v)), "0");
    sbuf_free(&out);
}

/* ---- publications ---- */

struct fixture {
    struct timer_service ts;
    struct subs_config cfg;
    struct presence *p;
    int changes;
    char last[64];
};

static void on_change(void *arg, const char *aor)
{
    struct fixture *f = arg;
    f->changes++;
    snprintf(f->last, sizeof(f->last), "%s", aor);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    timer_service_init(&f->ts);
    f->cfg = (struct subs_config){.enabled = true, .min_expires = 60, .max_expires = 7200, .default_expires = 3761,
                                  .presence_max_publications_per_user = 2, .presence_max_publications = 3};
    struct presence_deps d = {.cfg = &f->cfg, .timers = &f->ts, .on_change = on_change, .arg = f};
    f->p = presence_new(&d);
    *state = f;
    return f->p ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    presence_free(f->p);
    timer_service_free(&f->ts);
    free(f);
    return 0;
}

static struct presence_outcome publish(struct fixture *f, const char *aor, const char *if_match, int64_t expires,
                                       const char *body)
{
    struct presence_publish req = {.aor = aor, .if_match = if_match, .expires = expires, .body = body,
                                   .len = body ? strlen(body) : 0};
    struct presence_outcome out;
    presence_publish(f->p, &req, &out);
    return out;
}

static const char *document(struct fixture *f, const char *aor, bool registered, sbuf_t *out)
{
    sbuf_clear(out);
    assert_int_equal(presence_document(f->p, aor, ENTITY, registered, NULL, out), 0);
    return out->data;
}

static void test_etag_lifecycle(void **state)
{
    struct fixture *f = *state;
    sbuf_t doc;
    sbuf_init(&doc);
    char v[64];

    struct presence_outcome o = publish(f, "alice", NULL, 600, pidf_doc("t1", "open"));
    assert_int_equal(o.status, 200);
    assert_int_equal(o.expires, 600);
    assert_int_equal(strlen(o.etag), PRESENCE_ETAG_SIZE - 1);
    assert_int_equal(f->changes, 1);
    assert_string_equal(f->last, "alice");
    char e1[PRESENCE_ETAG_SIZE];
    memcpy(e1, o.etag, sizeof(e1));
    document(f, "alice", false, &doc);
    assert_string_equal(xp(&doc, "string(//p:tuple[@id='t1']/p:status/p:basic)", v, sizeof(v)), "open");

    /* Refresh: no body, a new tag, the old one is gone, nobody told. */
    o = publish(f, "alice", e1, 600, NULL);
    assert_int_equal(o.status, 200);
    assert_string_not_equal(o.etag, e1);
    assert_int_equal(f->changes, 1);
    assert_int_equal(publish(f, "alice", e1, 600, NULL).status, 412);
    char e2[PRESENCE_ETAG_SIZE];
    memcpy(e2, o.etag, sizeof(e2));

    /* Modify: the document is replaced, the watchers are told. */
    o = publish(f, "alice", e2, 600, pidf_doc("t1", "closed"));
    assert_int_equal(o.status, 200);
    assert_int_equal(f->changes, 2);
    document(f, "alice", true, &doc);
    assert_string_equal(xp(&doc, "string(//p:tuple[@id='t1']/p:status/p:basic)", v, sizeof(v)), "closed");
    assert_int_equal(presence_count(f->p, "alice"), 1);

    /* Another user cannot use alice's tag. */
    char e3[PRESENCE_ETAG_SIZE];
    memcpy(e3, o.etag, sizeof(e3));
    assert_int_equal(publish(f, "bob", e3, 0, NULL).status, 412);

    /* Remove: Expires 0; the state falls back to the registrations. */
    o = publish(f, "alice", e3, 0, NULL);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.expires, 0);
    assert_int_equal(f->changes, 3);
    assert_int_equal(presence_count(f->p, "alice"), 0);
    document(f, "alice", true, &doc);
    assert_string_equal(xp(&doc, "string(//p:tuple/p:status/p:basic)", v, sizeof(v)), "open");
    assert_string_equal(xp(&doc, "string(//p:tuple/@id)", v, sizeof(v)), "registration");
    assert_int_equal(publish(f, "alice", e3, 600, NULL).status, 412);
    sbuf_free(&doc);
}

static void test_expiry(void **state)
{
    struct fixture *f = *state;
    struct presence_outcome o = publish(f, "alice", NULL, 60, pidf_doc("t1", "open"));
    assert_int_equal(o.status, 200);
    timer_run(&f->ts, 59 * 1000);
    assert_int_equal(presence_count(f->p, "alice"), 1);
    timer_run(&f->ts, 60 * 1000);
    assert_int_equal(presence_count(f->p, "alice"), 0);
    assert_int_equal(f->changes, 2);
    assert_int_equal(publish(f, "alice", o.etag, 60, NULL).status, 412);
}

static void test_refused(void **state)
{
    struct fixture *f = *state;
    struct presence_outcome o = publish(f, "alice", NULL, 600, NULL);
    assert_int_equal(o.status, 400);
    o = publish(f, "alice", NULL, 600, "<presence/>");
    assert_int_equal(o.status, 400);
    assert_string_equal(o.why, "the root is not a PIDF <presence>");
    o = publish(f, "alice", NULL, 0, pidf_doc("t", "open"));
    assert_int_equal(o.status, 400);
    assert_int_equal(publish(f, "alice", "nosuchtag", 600, NULL).status, 412);
    /* A bad modify leaves the publication as it was. */
    o = publish(f, "alice", NULL, 600, pidf_doc("t", "open"));
    char tag[PRESENCE_ETAG_SIZE];
    memcpy(tag, o.etag, sizeof(tag));
    assert_int_equal(publish(f, "alice", tag, 600, "<x/>").status, 400);
    assert_int_equal(publish(f, "alice", tag, 600, NULL).status, 200);
    assert_int_equal(f->changes, 1);
}

static void test_caps_and_composition(void **state)
{
    struct fixture *f = *state;
    sbuf_t doc;
    sbuf_init(&doc);
    char v[64];
    assert_int_equal(publish(f, "alice", NULL, 600, pidf_doc("phone", "closed")).status, 200);
    assert_int_equal(publish(f, "alice", NULL, 600, pidf_doc("pc", "open")).status, 200);
    /* presence_max_publications_per_user = 2 */
    assert_int_equal(publish(f, "alice", NULL, 600, pidf_doc("tablet", "open")).status, 403);
    assert_int_equal(publish(f, "bob", NULL, 600, pidf_doc("b", "open")).status, 200);
    /* presence_max_publications = 3 */
    assert_int_equal(publish(f, "carol", NULL, 600, pidf_doc("c", "open")).status, 503);
    document(f, "alice", false, &doc);
    assert_string_equal(xp(&doc, "count(/p:presence/p:tuple)", v, sizeof(v)), "2");
    /* Newest first. */
    assert_string_equal(xp(&doc, "string(/p:presence/p:tuple[1]/@id)", v, sizeof(v)), "pc");
    assert_string_equal(xp(&doc, "string(/p:presence/p:tuple[2]/@id)", v, sizeof(v)), "phone");
    /* Nobody published for carol: derived from registration. */
    document(f, "carol", false, &doc);
    assert_string_equal(xp(&doc, "string(/p:presence/p:tuple/p:status/p:basic)", v, sizeof(v)), "closed");
    sbuf_free(&doc);
}

static void test_policy(void **state)
{
    struct fixture *f = *state;
    assert_true(presence_may_watch(f->p, "bob", "alice"));
    f->cfg.presence_policy = SUBS_PRESENCE_ALLOWLIST;
    assert_false(presence_may_watch(f->p, "bob", "alice"));
    assert_true(presence_may_watch(f->p, "alice", "alice"));
    const char *names[] = {"bob", "carol"};
    assert_int_equal(presence_allow_set(f->p, "alice", names, 2), 0);
    assert_true(presence_may_watch(f->p, "bob", "alice"));
    assert_false(presence_may_watch(f->p, "dave", "alice"));
    char got[4][PRESENCE_MAX_NAME];
    assert_int_equal(presence_allow_get(f->p, "alice", got, 4), 2);
    assert_string_equal(got[1], "carol");
    const char *bad[] = {""};
    assert_int_equal(presence_allow_set(f->p, "alice", bad, 1), -EINVAL);
    assert_int_equal(presence_allow_set(f->p, "alice", NULL, 0), 0);
    assert_false(presence_may_watch(f->p, "bob", "alice"));
    assert_int_equal(presence_allow_get(f->p, "alice", got, 4), 0);
}

/* ---- allow lists across nodes ---- */

struct told {
    int n;
    char last[64];
};

static void on_allow(void *arg, const char *aor)
{
    struct told *t = arg;
    t->n++;
    snprintf(t->last, sizeof(t->last), "%s", aor);
}

static int count_aor(void *arg, const char *aor)
{
    (void)aor;
    (*(int *)arg)++;
    return 0;
}

static void test_allow_apply(void **state)
{
    struct fixture *f = *state;
    f->cfg.presence_policy = SUBS_PRESENCE_ALLOWLIST;
    struct told t = {0};
    presence_set_allow_observer(f->p, on_allow, &t);
    /* the API's changes are told (a clear too, and one that changes nothing) */
    const char *bob[] = {"bob"}, *two[] = {"bob", "carol"}, *carol[] = {"carol"};
    assert_int_equal(presence_allow_set(f->p, "alice", bob, 1), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.last, "alice");
    assert_int_equal(presence_allow_set(f->p, "alice", bob, 1), 0);
    assert_int_equal(t.n, 2);
    const char *bad[] = {"a,b"};
    assert_int_equal(presence_allow_set(f->p, "alice", bad, 1), -EINVAL);
    assert_int_equal(t.n, 2); /* refused: not told */
    /* another node's: applied at once, not told back */
    assert_int_equal(presence_allow_apply(f->p, "dave", two, 2), PRESENCE_ALLOW_ADDED);
    assert_true(presence_may_watch(f->p, "carol", "dave"));
    assert_false(presence_may_watch(f->p, "erin", "dave"));
    assert_int_equal(presence_allow_apply(f->p, "dave", two, 2), PRESENCE_ALLOW_UNCHANGED);
    assert_int_equal(presence_allow_apply(f->p, "dave", carol, 1), PRESENCE_ALLOW_CHANGED);
    assert_false(presence_may_watch(f->p, "bob", "dave"));
    assert_true(presence_may_watch(f->p, "carol", "dave"));
    assert_int_equal(presence_allow_count(f->p), 2);
    int seen = 0;
    assert_int_equal(presence_allow_foreach(f->p, count_aor, &seen), 0);
    assert_int_equal(seen, 2);
    assert_int_equal(presence_allow_apply(f->p, "dave", NULL, 0), PRESENCE_ALLOW_REMOVED);
    assert_false(presence_may_watch(f->p, "carol", "dave"));
    assert_int_equal(presence_allow_apply(f->p, "dave", NULL, 0), PRESENCE_ALLOW_UNCHANGED);
    /* refusals change nothing */
    assert_int_equal(presence_allow_apply(f->p, "alice", bad, 1), PRESENCE_ALLOW_REJECTED);
    assert_int_equal(presence_allow_apply(f->p, "", bob, 1), PRESENCE_ALLOW_REJECTED);
    assert_true(presence_may_watch(f->p, "bob", "alice"));
    assert_int_equal(t.n, 2);
    assert_int_equal(presence_allow_set(f->p, "alice", NULL, 0), 0);
    assert_int_equal(t.n, 3);
    assert_int_equal(presence_allow_count(f->p), 0);
    presence_set_allow_observer(f->p, NULL, NULL);
    assert_int_equal(presence_allow_set(f->p, "alice", bob, 1), 0);
    assert_int_equal(t.n, 3);
}

static int decode(const char *s, char (*names)[PRESENCE_MAX_NAME], size_t *n)
{
    return presence_allow_record_decode(s, strlen(s), names, n);
}

static void test_allow_record(void **state)
{
    (void)state;
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME], got[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
    snprintf(names[0], PRESENCE_MAX_NAME, "bob");
    snprintf(names[1], PRESENCE_MAX_NAME, "q\"u\\o te");
    char buf[PRESENCE_ALLOW_RECORD_MAX + 1];
    int len = presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, 2, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(buf));
    size_t n = 0;
    assert_int_equal(presence_allow_record_decode(buf, (size_t)len, got, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0], "bob");
    assert_string_equal(got[1], names[1]);
    /* the longest list of the longest names, each escaped, fits a record */
    for (size_t i = 0; i < PRESENCE_MAX_ALLOW; i++) {
        memset(names[i], '"', PRESENCE_MAX_NAME - 1);
        names[i][PRESENCE_MAX_NAME - 1] = '\0';
    }
    len = presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, PRESENCE_MAX_ALLOW, buf,
                                       sizeof(buf));
    assert_true(len > 0 && len <= PRESENCE_ALLOW_RECORD_MAX);
    assert_int_equal(presence_allow_record_decode(buf, (size_t)len, got, &n), 0);
    assert_int_equal(n, PRESENCE_MAX_ALLOW);
    assert_string_equal(got[PRESENCE_MAX_ALLOW - 1], names[0]);
    /* none, too many, or too small a buffer */
    assert_int_equal(presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, 0, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, PRESENCE_MAX_ALLOW + 1,
                                                  buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, 1, buf, 16), -ENOSPC);
    /* members a newer node adds are ignored */
    assert_int_equal(decode("{\"allow\":[\"carol\"],\"at\":1}", got, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0], "carol");
    /* refused */
    char many[1024] = "{\"allow\":[", long_name[200];
    for (int i = 0; i <= PRESENCE_MAX_ALLOW; i++) strcat(many, i ? ",\"x\"" : "\"x\"");
    strcat(many, "]}");
    snprintf(long_name, sizeof(long_name), "{\"allow\":[\"%0*d\"]}", PRESENCE_MAX_NAME, 0);
    const char *bad[] = {
        "", "[]", "null", "{", "{}", "\"x\"", "{\"allow\":null}", "{\"allow\":\"bob\"}",
        "{\"allow\":[]}",              /* a cleared list is no field */
        "{\"allow\":[\"\"]}",           /* an empty name */
        "{\"allow\":[\"a,b\"]}",        /* a comma (the store's separator) */
        "{\"allow\":[\"a\\u0000b\"]}", /* a NUL inside */
        "{\"allow\":[\"bob\",7]}",      /* not a string */
        "{\"allow\":[\"bob\"],\"allow\":[\"eve\"]}", /* twice */
        "{\"allow\":[\"\xff\"]}",      /* not UTF-8 */
        many, long_name,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 99;
        if (decode(bad[i], got, &n) != -EINVAL || n != 0) fail_msg("accepted: %s", bad[i]);
    }
    /* longer than a record may be */
    char *huge = malloc(PRESENCE_ALLOW_RECORD_MAX + 2);
    assert_non_null(huge);
    memset(huge, ' ', PRESENCE_ALLOW_RECORD_MAX + 1);
    memcpy(huge, "{\"allow\":[\"bob\"]}", 17);
    assert_int_equal(presence_allow_record_decode(huge, PRESENCE_ALLOW_RECORD_MAX + 1, got, &n), -EINVAL);
    free(huge);
    assert_int_equal(presence_allow_record_decode(NULL, 0, got, &n), -EINVAL);
    /* field names */
    assert_true(presence_allow_field_ok("alice", 5));
    assert_true(presence_allow_field_ok("a.b-c_d", 7));
    assert_false(presence_allow_field_ok("", 0));
    assert_false(presence_allow_field_ok("#", 1));
    assert_false(presence_allow_field_ok("a#b", 3));
    assert_false(presence_allow_field_ok("a\nb", 3));
    assert_false(presence_allow_field_ok("a\0b", 3));
    assert_false(presence_allow_field_ok("a\x7f", 2));
    char big[300];
    memset(big, 'a', sizeof(big));
    assert_true(presence_allow_field_ok(big, 255));
    assert_false(presence_allow_field_ok(big, 256));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pidf_valid),
        cmocka_unit_test(test_pidf_invalid),
        cmocka_unit_test(test_pidf_too_many_tuples),
        cmocka_unit_test(test_pidf_compose_keeps_namespaces),
        cmocka_unit_test(test_pidf_derived),
        cmocka_unit_test_setup_teardown(test_etag_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps_and_composition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_apply, setup, teardown),
        cmocka_unit_test(test_allow_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
