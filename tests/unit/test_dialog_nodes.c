/* test_dialog_nodes.c — the dialog package's records across nodes
 * (subs/dialog_nodes.h): encoding and reading back, what is refused, an
 * HGETALL answer with its skips and caps, and the diff of two reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "subs/dialog_nodes.h"
#include "fake_redis.h"

#define NOW 1700000000000LL

static bool alive(void *arg, const char *node)
{
    (void)arg;
    return strcmp(node, "dead") != 0;
}

static struct dialog_info_entry entry(const char *id, enum dialog_state st)
{
    struct dialog_info_entry e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "%s", id);
    snprintf(e.call_id, sizeof(e.call_id), "call-%s@h", id);
    snprintf(e.remote_tag, sizeof(e.remote_tag), "ft1");
    snprintf(e.local_uri, sizeof(e.local_uri), "sip:bob@example.org");
    snprintf(e.remote_uri, sizeof(e.remote_uri), "sip:alice@example.org");
    snprintf(e.remote_display, sizeof(e.remote_display), "Alice \"A\" <&>");
    e.state = st;
    return e;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct dialog_info_entry e = entry("0123456789abcdef", DIALOG_TERMINATED);
    e.event = "rejected";
    e.code = 486;
    snprintf(e.local_tag, sizeof(e.local_tag), "tt9");
    char field[DIALOG_NODES_FIELD_MAX], rec[DIALOG_NODES_RECORD_MAX];
    int n = dialog_nodes_encode("nodeA", &e, NOW + 5000, field, sizeof(field), rec, sizeof(rec));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(rec));
    assert_string_equal(field, "nodeA/0123456789abcdef");
    struct dialog_remote r;
    assert_int_equal(dialog_nodes_decode(field, strlen(field), rec, (size_t)n, &r), 0);
    assert_string_equal(r.node, "nodeA");
    assert_true(r.expires_wall_ms == NOW + 5000);
    assert_string_equal(r.e.id, e.id);
    assert_string_equal(r.e.call_id, e.call_id);
    assert_string_equal(r.e.local_tag, "tt9");
    assert_string_equal(r.e.remote_tag, "ft1");
    assert_false(r.e.initiator);
    assert_int_equal(r.e.state, DIALOG_TERMINATED);
    assert_string_equal(r.e.event, "rejected");
    assert_int_equal(r.e.code, 486);
    assert_string_equal(r.e.remote_display, "Alice \"A\" <&>");
    assert_string_equal(r.e.local_uri, "sip:bob@example.org");

    /* an early call of an initiator: no event, no code written */
    struct dialog_info_entry x = entry("00000000000000ff", DIALOG_EARLY);
    x.initiator = true;
    x.event = "rejected"; /* ignored: not terminated */
    n = dialog_nodes_encode("b", &x, NOW + 1, field, sizeof(field), rec, sizeof(rec));
    assert_true(n > 0);
    assert_null(strstr(rec, "\"ev\""));
    assert_null(strstr(rec, "\"code\""));
    assert_int_equal(dialog_nodes_decode(field, strlen(field), rec, (size_t)n, &r), 0);
    assert_true(r.e.initiator);
    assert_int_equal(r.e.state, DIALOG_EARLY);
    assert_null(r.e.event);

    /* refusals of the writer */
    assert_int_equal(dialog_nodes_encode("a/b", &e, NOW, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    assert_int_equal(dialog_nodes_encode("a b", &e, NOW, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    assert_int_equal(dialog_nodes_encode("a{", &e, NOW, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    assert_int_equal(dialog_nodes_encode("", &e, NOW, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    assert_int_equal(dialog_nodes_encode("a", &e, 0, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    struct dialog_info_entry noid = e;
    noid.id[0] = '\0';
    assert_int_equal(dialog_nodes_encode("a", &noid, NOW, field, sizeof(field), rec, sizeof(rec)), -EINVAL);
    assert_int_equal(dialog_nodes_encode("a", &e, NOW, field, 5, rec, sizeof(rec)), -ENOSPC);
    assert_int_equal(dialog_nodes_encode("a", &e, NOW, field, sizeof(field), rec, 20), -ENOSPC);
}

static int dec(const char *field, const char *value)
{
    struct dialog_remote r;
    return dialog_nodes_decode(field, strlen(field), value, strlen(value), &r);
}

static void test_refusals(void **state)
{
    (void)state;
    const char *f = "b/0123456789abcdef";
    const char *base = "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"}";
    assert_int_equal(dec(f, base), 0);
    /* fields */
    assert_int_equal(dec("b/0123456789ABCDEF", base), -EINVAL);
    assert_int_equal(dec("b/0123456789abcde", base), -EINVAL);
    assert_int_equal(dec("/0123456789abcdef", base), -EINVAL);
    assert_int_equal(dec("b0123456789abcdef", base), -EINVAL);
    assert_int_equal(dec("c/0123456789abcdef", base), -EINVAL); /* not the record's node */
    assert_int_equal(dec("b c/0123456789abcdef", base), -EINVAL);
    /* values */
    const char *bad[] = {
        "",
        "[]",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"",
        "{\"node\":\"b\",\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":0,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":\"5\",\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"sideways\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"ringing\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"ev\":\"rejected\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"terminated\",\"ev\":\"boom\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"code\":99}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"code\":700}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\\u0000d\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\\nd\",\"dir\":\"recipient\",\"st\":\"early\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"ru\":\"http://x\"}",
        "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"lt\":7}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dec(f, bad[i]) != -EINVAL) fail_msg("accepted: %s", bad[i]);
    }
    /* a tag at its cap */
    char big[DIALOG_INFO_MAX_TAG + 128], v[DIALOG_INFO_MAX_TAG + 256];
    memset(big, 't', DIALOG_INFO_MAX_TAG - 1);
    big[DIALOG_INFO_MAX_TAG - 1] = '\0';
    snprintf(v, sizeof(v), "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"lt\":\"%s\"}",
             big);
    assert_int_equal(dec(f, v), 0);
    big[DIALOG_INFO_MAX_TAG - 1] = 't';
    big[DIALOG_INFO_MAX_TAG] = '\0';
    snprintf(v, sizeof(v), "{\"node\":\"b\",\"exp\":5,\"cid\":\"c\",\"dir\":\"recipient\",\"st\":\"early\",\"lt\":\"%s\"}",
             big);
    assert_int_equal(dec(f, v), -EINVAL);
    /* a record over DIALOG_NODES_RECORD_MAX, padded with white space */
    static char huge[DIALOG_NODES_RECORD_MAX + 200];
    memset(huge, ' ', sizeof(huge) - 1);
    memcpy(huge + sizeof(huge) - 1 - strlen(base), base, strlen(base));
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(dec(f, huge), -EINVAL);
    struct dialog_remote r;
    assert_int_equal(dialog_nodes_decode(NULL, 0, base, strlen(base), &r), -EINVAL);
}

static void rec_of(const char *node, const char *id, enum dialog_state st, int64_t exp, char *field, char *rec)
{
    struct dialog_info_entry e = entry(id, st);
    assert_true(dialog_nodes_encode(node, &e, exp, field, DIALOG_NODES_FIELD_MAX, rec, 1024) > 0);
}

static void test_parse(void **state)
{
    (void)state;
    char f[7][DIALOG_NODES_FIELD_MAX], v[7][1024];
    rec_of("b", "000000000000000a", DIALOG_EARLY, NOW + 5000, f[0], v[0]);
    rec_of("me", "000000000000000b", DIALOG_EARLY, NOW + 5000, f[1], v[1]);      /* own */
    rec_of("c", "000000000000000c", DIALOG_EARLY, NOW, f[2], v[2]);              /* expired */
    rec_of("dead", "000000000000000d", DIALOG_EARLY, NOW + 5000, f[3], v[3]);    /* dead node */
    rec_of("c", "000000000000000a", DIALOG_CONFIRMED, NOW + 5000, f[4], v[4]);   /* same call, later */
    rec_of("c", "000000000000000e", DIALOG_TRYING, NOW + 5000, f[5], v[5]);
    snprintf(f[6], sizeof(f[6]), "junk");
    snprintf(v[6], sizeof(v[6]), "{}");
    redisReply e[15];
    redisReply *ptr[15];
    for (int i = 0; i < 7; i++) {
        e[2 * i] = fake_str_reply(f[i]);
        e[2 * i + 1] = fake_str_reply(v[i]);
    }
    e[14] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = 1};
    for (int i = 0; i < 15; i++) ptr[i] = &e[i];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 14, .element = ptr};
    struct dialog_remote out[DIALOG_NODES_MAX];
    struct follow_read_stats st;
    int n = dialog_nodes_parse(&arr, "me", NOW, alive, NULL, out, DIALOG_NODES_MAX, &st);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].e.id, "000000000000000a");
    assert_int_equal(out[0].e.state, DIALOG_CONFIRMED);
    assert_string_equal(out[0].node, "c");
    assert_string_equal(out[1].e.id, "000000000000000e");
    assert_int_equal(st.own, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.rejected, 1);
    /* a value that is no string */
    e[1] = e[14];
    n = dialog_nodes_parse(&arr, "me", NOW, alive, NULL, out, DIALOG_NODES_MAX, &st);
    assert_int_equal(n, 2); /* the later record of 'a' still reads */
    assert_int_equal(st.rejected, 2);
    /* the cap */
    n = dialog_nodes_parse(&arr, "me", NOW, alive, NULL, out, 1, &st);
    assert_int_equal(n, 1);
    assert_int_equal(st.over_cap, 1);
    redisReply notarr = {.type = REDIS_REPLY_NIL};
    assert_int_equal(dialog_nodes_parse(&notarr, "me", NOW, alive, NULL, out, 4, &st), -1);
    assert_int_equal(dialog_nodes_parse(NULL, "me", NOW, alive, NULL, out, 4, &st), -1);
}

static void test_parse_pairs_cap(void **state)
{
    (void)state;
    enum { PAIRS = DIALOG_NODES_PAIRS_MAX + 10 };
    static char f[PAIRS][DIALOG_NODES_FIELD_MAX], v[PAIRS][1024];
    static redisReply e[2 * PAIRS];
    static redisReply *ptr[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        char id[17];
        snprintf(id, sizeof(id), "%016x", i);
        rec_of("b", id, DIALOG_EARLY, NOW + 5000, f[i], v[i]);
        e[2 * i] = fake_str_reply(f[i]);
        e[2 * i + 1] = fake_str_reply(v[i]);
        ptr[2 * i] = &e[2 * i];
        ptr[2 * i + 1] = &e[2 * i + 1];
    }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2 * PAIRS, .element = ptr};
    struct dialog_remote out[DIALOG_NODES_MAX];
    struct follow_read_stats st;
    assert_int_equal(dialog_nodes_parse(&arr, "me", NOW, alive, NULL, out, 100, &st), DIALOG_NODES_MAX);
    assert_int_equal(st.over_cap, PAIRS - DIALOG_NODES_MAX);
}

static void test_diff(void **state)
{
    (void)state;
    struct dialog_remote old[3], cur[3];
    memset(old, 0, sizeof(old));
    memset(cur, 0, sizeof(cur));
    old[0].e = entry("000000000000000a", DIALOG_EARLY);     /* -> confirmed */
    old[1].e = entry("000000000000000b", DIALOG_CONFIRMED); /* vanishes: terminated */
    old[2].e = entry("000000000000000c", DIALOG_EARLY);     /* unchanged */
    cur[0].e = entry("000000000000000a", DIALOG_CONFIRMED);
    cur[1].e = entry("000000000000000c", DIALOG_EARLY);
    cur[2].e = entry("000000000000000d", DIALOG_TERMINATED); /* new, already over */
    cur[2].e.event = "cancelled";
    cur[2].e.code = 487;
    struct dialog_info_entry out[6];
    size_t n = dialog_nodes_diff(old, 3, cur, 3, out, 6);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].id, "000000000000000b");
    assert_int_equal(out[0].state, DIALOG_TERMINATED);
    assert_null(out[0].event);
    assert_int_equal(out[0].code, 0);
    assert_string_equal(out[1].id, "000000000000000a");
    assert_int_equal(out[1].state, DIALOG_CONFIRMED);
    assert_string_equal(out[2].id, "000000000000000d");
    assert_string_equal(out[2].event, "cancelled");
    /* itself: nothing; a tag change: told */
    assert_int_equal(dialog_nodes_diff(cur, 3, cur, 3, out, 6), 0);
    struct dialog_remote tagged = cur[1];
    snprintf(tagged.e.local_tag, sizeof(tagged.e.local_tag), "fork2");
    assert_int_equal(dialog_nodes_diff(&cur[1], 1, &tagged, 1, out, 6), 1);
    /* a terminated one that vanishes is not told again */
    assert_int_equal(dialog_nodes_diff(&cur[2], 1, NULL, 0, out, 6), 0);
    /* the cap */
    assert_int_equal(dialog_nodes_diff(NULL, 0, cur, 3, out, 2), 2);
    /* the changes make a partial document */
    n = dialog_nodes_diff(old, 3, cur, 3, out, 6);
    const struct dialog_info_entry *d[6];
    for (size_t i = 0; i < n; i++) d[i] = &out[i];
    sbuf_t sb;
    sbuf_init(&sb);
    assert_int_equal(dialog_info_build(&sb, 7, false, "sip:bob@example.org", d, n), 0);
    assert_non_null(strstr(sb.data, "version=\"7\" state=\"partial\""));
    assert_non_null(strstr(sb.data, "<state event=\"cancelled\" code=\"487\">terminated</state>"));
    assert_non_null(strstr(sb.data, "Alice &quot;A&quot; &lt;&amp;&gt;"));
    sbuf_free(&sb);
}

static int msg(const char *m, char *aor, char *node)
{
    return dialog_nodes_message("t:", m, strlen(m), aor, 64, node, 32);
}

static void test_message(void **state)
{
    (void)state;
    char aor[64], node[32];
    assert_int_equal(msg("t:dlg:{alice}", aor, node), DIALOG_NODES_MSG_CHANGED);
    assert_string_equal(aor, "alice");
    assert_string_equal(node, "");
    assert_int_equal(msg("t:dlgw:{bob@example.org} node-a", aor, node), DIALOG_NODES_MSG_WATCHED);
    assert_string_equal(aor, "bob@example.org");
    assert_string_equal(node, "node-a");
    assert_int_equal(msg("t:dlgw-sync", aor, node), DIALOG_NODES_MSG_SYNC);
    const char *bad[] = {
        "",
        "t:",
        "x:dlg:{alice}",             /* another prefix */
        "t:dlg:{}",                  /* no AoR */
        "t:dlg:{alice",              /* no brace */
        "t:dlg:{alice} x",           /* something after */
        "t:dlg:{al ice}",            /* a space */
        "t:dlg:{al{ice}",            /* a brace */
        "t:dlgw:{alice}",            /* no node */
        "t:dlgw:{alice} ",           /* empty node */
        "t:dlgw:{alice}  a",         /* two spaces */
        "t:dlgw:{alice} a/b",        /* '/' in the node */
        "t:dlgw:{alice} a b",        /* a space in the node */
        "t:dlgw-sync ",
        "t:loc:{alice}",
        "t:dlgw:{alice} 0123456789012345678901234567890123456789", /* over ncap */
        "t:dlg:{0123456789012345678901234567890123456789012345678901234567890123456789}", /* over cap */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (msg(bad[i], aor, node) != -EINVAL) fail_msg("accepted: %s", bad[i]);
    assert_int_equal(dialog_nodes_message("t:", "t:dlg:{a\0b}", 12, aor, 64, node, 32), -EINVAL); /* a NUL */
    assert_int_equal(dialog_nodes_message("t:", NULL, 0, aor, 64, node, 32), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_refusals), cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_pairs_cap), cmocka_unit_test(test_diff), cmocka_unit_test(test_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
