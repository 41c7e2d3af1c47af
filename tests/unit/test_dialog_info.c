/* test_dialog_info.c — the dialog package's state (RFC 4235 §3.7.1) and
 * document (§4): state changes from responses and BYE as the proxy reports
 * them, the per-AoR table and its cap, and the XML read back with libxml2
 * and checked by XPath (subs_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/sbuf.h"
#include "subs/dialog_info.h"
#include "subs_fixture.h"

static void doc_open(struct doc *doc, const sbuf_t *b)
{
    doc_open_ns(doc, b->data, b->len, "dialog.xml", "d", "urn:ietf:params:xml:ns:dialog-info");
}

static struct dialog_table *t;

static int setup(void **state)
{
    (void)state;
    t = dialog_table_new(2);
    return t ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dialog_table_free(t);
    return 0;
}

/* A completed call as bob (the callee) sees it: trying, early with his tag,
 * confirmed, and alice's BYE is remote-bye; 100 and a repeated 180 change
 * nothing. */
static void test_callee_call(void **state)
{
    (void)state;
    struct dialog_info_entry *e = dialog_table_add(t, "bob", STR_LIT("c1@h"), STR_LIT("atag"), false);
    assert_non_null(e);
    assert_int_equal(e->state, DIALOG_TRYING);
    assert_string_equal(e->remote_tag, "atag");
    assert_false(dialog_info_on_response(e, 100, STR_NULL, false, false));
    assert_true(dialog_info_on_response(e, 183, STR_NULL, false, false));
    assert_int_equal(e->state, DIALOG_PROCEEDING);
    assert_true(dialog_info_on_response(e, 180, STR_LIT("btag"), false, false));
    assert_int_equal(e->state, DIALOG_EARLY);
    assert_string_equal(e->local_tag, "btag");
    assert_false(dialog_info_on_response(e, 180, STR_LIT("btag"), false, false));
    assert_true(dialog_info_on_response(e, 200, STR_LIT("btag"), false, false));
    assert_int_equal(e->state, DIALOG_CONFIRMED);
    assert_false(dialog_info_on_response(e, 486, STR_NULL, false, false)); /* a late fork's failure */
    assert_true(dialog_info_on_bye(e, STR_LIT("atag")));
    assert_int_equal(e->state, DIALOG_TERMINATED);
    assert_string_equal(e->event, "remote-bye");
    assert_false(dialog_info_on_bye(e, STR_LIT("btag"))); /* nothing after terminated */
    assert_ptr_equal(dialog_table_find(t, "bob", STR_LIT("c1@h"), STR_LIT("atag")), e);
    dialog_table_remove(t, e);
    assert_null(dialog_table_find(t, "bob", STR_LIT("c1@h"), STR_LIT("atag")));
    assert_int_equal(dialog_table_count(t), 0);
}

/* The caller's side: its own BYE is local-bye; failures name their cause. */
static void test_caller_and_failures(void **state)
{
    (void)state;
    struct dialog_info_entry *e = dialog_table_add(t, "alice", STR_LIT("c2@h"), STR_LIT("atag"), true);
    assert_non_null(e);
    assert_string_equal(e->local_tag, "atag");
    assert_true(dialog_info_on_response(e, 200, STR_LIT("btag"), false, false));
    assert_string_equal(e->remote_tag, "btag");
    assert_true(dialog_info_on_bye(e, STR_LIT("atag")));
    assert_string_equal(e->event, "local-bye");
    dialog_table_remove(t, e);

    static const struct {
        int status;
        bool cancelled, timed_out;
        const char *event;
    } cases[] = {{487, true, false, "cancelled"}, {408, false, true, "timeout"}, {486, false, false, "rejected"},
                 {603, false, false, "rejected"}, {487, false, false, "cancelled"},
                 {487, false, true, "timeout"} /* timer C CANCELled the branches */};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        e = dialog_table_add(t, "alice", STR_LIT("c3@h"), STR_LIT("atag"), true);
        assert_non_null(e);
        assert_true(dialog_info_on_response(e, 180, STR_LIT("btag"), false, false));
        assert_true(dialog_info_on_response(e, cases[i].status, STR_NULL, cases[i].cancelled, cases[i].timed_out));
        assert_int_equal(e->state, DIALOG_TERMINATED);
        assert_string_equal(e->event, cases[i].event);
        assert_int_equal(e->code, cases[i].status);
        dialog_table_remove(t, e);
    }
}

/* The cap is per AoR; a Call-ID finds the entries of every AoR; too long
 * fields are refused. */
static void test_table_bounds(void **state)
{
    (void)state;
    struct dialog_info_entry *a = dialog_table_add(t, "bob", STR_LIT("x@h"), STR_LIT("t1"), false);
    struct dialog_info_entry *b = dialog_table_add(t, "bob", STR_LIT("y@h"), STR_LIT("t2"), false);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(dialog_table_add(t, "bob", STR_LIT("z@h"), STR_LIT("t3"), false)); /* cap 2 */
    struct dialog_info_entry *c = dialog_table_add(t, "alice", STR_LIT("x@h"), STR_LIT("t1"), true);
    assert_non_null(c);
    assert_string_equal(dialog_table_aor(c), "alice");
    const struct dialog_info_entry *list[4];
    assert_int_equal(dialog_table_list(t, "bob", list, 4), 2);
    assert_ptr_equal(list[0], a); /* oldest first */
    assert_ptr_equal(list[1], b);
    struct dialog_info_entry *same[4];
    assert_int_equal(dialog_table_by_call(t, STR_LIT("x@h"), same, 4), 2);
    char long_id[DIALOG_INFO_MAX_CALL_ID + 1];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_null(dialog_table_add(t, "carol", str_from_cstr(long_id), STR_LIT("t"), false));
    assert_null(dialog_table_add(t, "carol", STR_LIT("q@h"), STR_NULL, false));
    assert_int_equal(dialog_table_count(t), 3);
}

/* The document: full with two dialogs, attributes escaped and read back. */
static void test_document(void **state)
{
    (void)state;
    struct dialog_info_entry *a = dialog_table_add(t, "bob", STR_LIT("c<1>@h"), STR_LIT("atag"), false);
    assert_non_null(a);
    snprintf(a->local_uri, sizeof(a->local_uri), "sip:bob@example.com");
    snprintf(a->remote_uri, sizeof(a->remote_uri), "sip:alice@example.com");
    snprintf(a->remote_display, sizeof(a->remote_display), "Alice \"A&B\"");
    assert_true(dialog_info_on_response(a, 200, STR_LIT("btag"), false, false));
    struct dialog_info_entry *b = dialog_table_add(t, "bob", STR_LIT("c2@h"), STR_LIT("ctag"), false);
    assert_non_null(b);
    assert_true(dialog_info_on_response(b, 486, STR_NULL, false, false));
    const struct dialog_info_entry *d[2] = {a, b};
    sbuf_t s;
    sbuf_init(&s);
    assert_int_equal(dialog_info_build(&s, 3, true, "sip:bob@example.com", d, 2), 0);
    struct doc doc;
    doc_open(&doc, &s);
    assert_string_equal(xs(&doc, "/d:dialog-info/@version"), "3");
    assert_string_equal(xs(&doc, "/d:dialog-info/@state"), "full");
    assert_string_equal(xs(&doc, "/d:dialog-info/@entity"), "sip:bob@example.com");
    assert_string_equal(xs(&doc, "count(/d:dialog-info/d:dialog)"), "2");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/@call-id"), "c<1>@h");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/@local-tag"), "btag");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/@remote-tag"), "atag");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/@direction"), "recipient");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/d:state"), "confirmed");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/d:state/@event"), "");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/d:remote/d:identity"), "sip:alice@example.com");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/d:remote/d:identity/@display"), "Alice \"A&B\"");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[1]/d:local/d:identity"), "sip:bob@example.com");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[2]/d:state"), "terminated");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[2]/d:state/@event"), "rejected");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[2]/d:state/@code"), "486");
    assert_string_equal(xs(&doc, "/d:dialog-info/d:dialog[2]/@local-tag"), ""); /* never answered: no tag */
    char id1[512]; /* as large as what xs() returns */
    snprintf(id1, sizeof(id1), "%s", xs(&doc, "/d:dialog-info/d:dialog[1]/@id"));
    assert_string_not_equal(id1, xs(&doc, "/d:dialog-info/d:dialog[2]/@id"));
    doc_close(&doc);
    /* partial, no dialog: still a document */
    sbuf_clear(&s);
    assert_int_equal(dialog_info_build(&s, 4, false, "sip:bob@example.com", NULL, 0), 0);
    doc_open(&doc, &s);
    assert_string_equal(xs(&doc, "/d:dialog-info/@state"), "partial");
    assert_string_equal(xs(&doc, "count(/d:dialog-info/d:dialog)"), "0");
    doc_close(&doc);
    sbuf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_callee_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
