/* test_mwi.c — the message-summary package's pieces (RFC 3842): body
 * checks against the §5.2 grammar (with the reason a 400 carries), the
 * voicemail source list and its matching, the per-user summary store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "subs/mwi.h"
#include "subs/mwi_mirror.h"

static const char *why_of(const char *body)
{
    const char *why = NULL;
    if (mwi_validate(body, strlen(body), &why) == 0) return NULL;
    assert_non_null(why);
    return why;
}

static void test_valid_bodies(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "Messages-Waiting: yes\r\n",
        "Messages-Waiting: no",
        "messages-waiting :  YES\n",
        "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vm.example.com\r\nVoice-Message: 2/8 (0/2)\r\n",
        "Messages-Waiting: yes\r\nVoice-Message: 4/8\r\nFax-Message: 0/0 ( 0 / 1 )\r\nnone: 1/1\r\n",
        "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n\r\nTo: <sip:alice@example.com>\r\nSubject: hi\r\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) assert_null(why_of(ok[i]));
}

static void test_invalid_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"", "Empty Message Summary"},
        {"Voice-Message: 1/2\r\n", "Missing Messages-Waiting"},
        {"Messages-Waiting: maybe\r\n", "Bad Messages-Waiting"},
        {"Messages-Waiting yes\r\n", "Missing Messages-Waiting"},
        {"Messages-Waiting: yes\r\nVoice-Message: 2-8\r\n", "Bad Message Counts"},
        {"Messages-Waiting: yes\r\nVoice-Message: 2/8 (0/2\r\n", "Bad Message Counts"},
        {"Messages-Waiting: yes\r\nVoice-Message: 2/8 x\r\n", "Bad Message Counts"},
        {"Messages-Waiting: yes\r\nVoice-Message: 1234567890/1\r\n", "Bad Message Counts"},
        {"Messages-Waiting: yes\r\nSmoke-Message: 1/1\r\n", "Unknown Summary Line"},
        {"Messages-Waiting: yes\r\nVoice-Message: 1/1\r\nMessage-Account: sip:a@b\r\n", "Misplaced Message-Account"},
        {"Messages-Waiting: yes\r\nMessage-Account: not a uri\r\n", "Bad Message-Account"},
        {"Messages-Waiting: yes\r\n\r\nno colon here\r\n", "Bad Message Header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_string_equal(why_of(bad[i].body), bad[i].why);
    /* A NUL inside, and the size cap. */
    const char nul[] = "Messages-Waiting: yes\r\n\0";
    const char *why = NULL;
    assert_int_equal(mwi_validate(nul, sizeof(nul) - 1, &why), -1);
    static char big[MWI_MAX_BODY + 2];
    memset(big, ' ', sizeof(big));
    memcpy(big, "Messages-Waiting: yes", 21);
    assert_int_equal(mwi_validate(big, sizeof(big), &why), -1);
    assert_string_equal(why, "Message Summary Too Large");
    /* More lines than allowed. */
    char many[MWI_MAX_BODY];
    size_t n = (size_t)snprintf(many, sizeof(many), "Messages-Waiting: yes\n");
    for (int i = 0; i < 80 && n + 20 < sizeof(many); i++) n += (size_t)snprintf(many + n, sizeof(many) - n, "none: 1/1\n");
    assert_int_equal(mwi_validate(many, n, &why), -1);
    assert_string_equal(why, "Too Many Summary Lines");
}

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
    return ss;
}

static void test_sources(void **state)
{
    (void)state;
    struct mwi_source src[MWI_MAX_SOURCES];
    char err[200];
    assert_int_equal(mwi_sources_parse("", src, MWI_MAX_SOURCES, err, sizeof(err)), 0);
    assert_int_equal(mwi_sources_parse(" 192.0.2.1 , 192.0.2.2:5070, [2001:db8::1]:5060, ::1", src,
                                       MWI_MAX_SOURCES, err, sizeof(err)),
                     4);
    struct sockaddr_storage a = v4("192.0.2.1", 40000);
    assert_true(mwi_source_match(src, 4, &a)); /* no port: any */
    a = v4("192.0.2.2", 5070);
    assert_true(mwi_source_match(src, 4, &a));
    a = v4("192.0.2.2", 5071);
    assert_false(mwi_source_match(src, 4, &a)); /* the port given must match */
    a = v4("192.0.2.3", 5070);
    assert_false(mwi_source_match(src, 4, &a));
    /* An IPv4 source seen v4-mapped on a dual-stack socket. */
    struct sockaddr_storage m;
    memset(&m, 0, sizeof(m));
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&m;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(1234);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6->sin6_addr), 1);
    assert_true(mwi_source_match(src, 4, &m));
    static const char *const bad[] = {"192.0.2.1:0", "192.0.2.1:70000", "[2001:db8::1", "[::1]x",
                                      "host.invalid", "1.2.3.4:5:6:7:z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mwi_sources_parse(bad[i], src, MWI_MAX_SOURCES, err, sizeof(err)), -1);
    assert_int_equal(mwi_sources_parse("1.1.1.1,1.1.1.2,1.1.1.3", src, 2, err, sizeof(err)), -1);
}

static void test_store(void **state)
{
    (void)state;
    struct mwi_store *m = mwi_store_new(2);
    assert_non_null(m);
    assert_null(mwi_store_get(m, "alice"));
    assert_int_equal(mwi_store_set(m, "alice", "Messages-Waiting: no\r\n", 22), 0);
    assert_int_equal(mwi_store_set(m, "alice", "Messages-Waiting: yes\r\n", 23), 0); /* replaced */
    assert_string_equal(mwi_store_get(m, "alice"), "Messages-Waiting: yes\r\n");
    assert_int_equal(mwi_store_set(m, "bob", "Messages-Waiting: no", 20), 0);
    assert_int_equal(mwi_store_set(m, "carol", "Messages-Waiting: no", 20), -ENOSPC);
    assert_int_equal(mwi_store_set(m, "bob", "x", MWI_MAX_BODY + 1), -EINVAL);
    assert_int_equal(mwi_store_count(m), 2);
    mwi_store_free(m);
}

/* ---- across nodes ([redis] mirror_mwi): the record and the order ---- */

static int count_one(void *arg, const char *aor)
{
    (void)aor;
    (*(int *)arg)++;
    return 0;
}

static void test_store_stamps(void **state)
{
    (void)state;
    struct mwi_store *m = mwi_store_new(4);
    assert_int_equal(mwi_store_stamp(m, "alice"), -1);
    assert_int_equal(mwi_store_put(m, "alice", "Messages-Waiting: no", 20, 1700000000000), 0);
    assert_int_equal(mwi_store_stamp(m, "alice"), 1700000000000);
    assert_int_equal(mwi_store_set(m, "bob", "Messages-Waiting: no", 20), 0);
    assert_int_equal(mwi_store_stamp(m, "bob"), 0);
    int n = 0;
    assert_int_equal(mwi_store_foreach(m, count_one, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(mwi_store_del(m, "bob"), 0);
    assert_int_equal(mwi_store_del(m, "bob"), -ENOENT);
    assert_null(mwi_store_get(m, "bob"));
    assert_int_equal(mwi_store_count(m), 1);
    mwi_store_free(m);
}

static void test_record(void **state)
{
    (void)state;
    const char *body = "Messages-Waiting: yes\r\nVoice-Message: 2/8 (0/2)\r\n";
    char buf[MWI_MIRROR_RECORD_MAX + 1];
    int n = mwi_record_encode(1700000000123, body, strlen(body), buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(strncmp(buf, "1700000000123\n", 14), 0);
    int64_t stamp;
    const char *b;
    size_t bl;
    assert_int_equal(mwi_record_decode(buf, (size_t)n, &stamp, &b, &bl), 0);
    assert_int_equal(stamp, 1700000000123);
    assert_int_equal(bl, strlen(body));
    assert_memory_equal(b, body, bl);
    /* refusals: encoding */
    assert_int_equal(mwi_record_encode(-1, body, strlen(body), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(mwi_record_encode(1, body, MWI_MAX_BODY + 1, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(mwi_record_encode(1, body, strlen(body), buf, 10), -ENOSPC);
    /* refusals: what Redis may hold */
    static const char *const bad[] = {
        "",                                      /* empty */
        "1700000000123",                         /* no body */
        "1700000000123\n",                       /* empty body */
        "\nMessages-Waiting: no",                /* no stamp */
        "-1\nMessages-Waiting: no",              /* not digits */
        " 1\nMessages-Waiting: no",              /* a space first */
        "1 \nMessages-Waiting: no",              /* a space after */
        "17000000001234567\nMessages-Waiting: no", /* more than 15 digits */
        "1\nMessages-Waiting: maybe",            /* a body mwi_validate refuses */
        "1\r\nMessages-Waiting: no",            /* CR before the stamp's LF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mwi_record_decode(bad[i], strlen(bad[i]), &stamp, &b, &bl), -EINVAL);
    assert_int_equal(mwi_record_decode("1\nMessages-Waiting: no\0x", 25, &stamp, &b, &bl), -EINVAL); /* NUL */
    char big[MWI_MIRROR_RECORD_MAX + 8];
    memset(big, 'a', sizeof(big));
    memcpy(big, "1\nMessages-Waiting: no\n\nX-A: ", 30);
    assert_int_equal(mwi_record_decode(big, sizeof(big), &stamp, &b, &bl), -EINVAL); /* too long */
    /* names */
    assert_true(mwi_mirror_name_ok("alice@example.com", 17));
    assert_false(mwi_mirror_name_ok("", 0));
    assert_false(mwi_mirror_name_ok("a#b", 3));
    assert_false(mwi_mirror_name_ok("a b", 3));
    assert_false(mwi_mirror_name_ok("a\nb", 3));
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    assert_false(mwi_mirror_name_ok(longname, 256));
    assert_true(mwi_mirror_name_ok(longname, 255));
}

static int rec(char *buf, int64_t stamp, const char *body)
{
    return mwi_record_encode(stamp, body, strlen(body), buf, MWI_MIRROR_RECORD_MAX + 1);
}

static void test_apply_order(void **state)
{
    (void)state;
    struct mwi_store *m = mwi_store_new(2);
    char r[MWI_MIRROR_RECORD_MAX + 1];
    int n = rec(r, 100, "Messages-Waiting: yes");
    assert_int_equal(mwi_mirror_apply(m, "alice", r, (size_t)n), MWI_APPLY_ADDED);
    assert_int_equal(mwi_mirror_apply(m, "alice", r, (size_t)n), MWI_APPLY_UNCHANGED); /* its own, again: no echo */
    n = rec(r, 99, "Messages-Waiting: no");
    assert_int_equal(mwi_mirror_apply(m, "alice", r, (size_t)n), MWI_APPLY_OLDER); /* older: kept */
    assert_string_equal(mwi_store_get(m, "alice"), "Messages-Waiting: yes");
    n = rec(r, 100, "Messages-Waiting: no");
    assert_int_equal(mwi_mirror_apply(m, "alice", r, (size_t)n), MWI_APPLY_CHANGED); /* same stamp: Redis's */
    n = rec(r, 101, "Messages-Waiting: yes");
    assert_int_equal(mwi_mirror_apply(m, "alice", r, (size_t)n), MWI_APPLY_CHANGED);
    assert_int_equal(mwi_store_stamp(m, "alice"), 101);
    assert_int_equal(mwi_mirror_apply(m, "alice", "garbage", 7), MWI_APPLY_REJECTED);
    assert_int_equal(mwi_mirror_apply(m, "a#b", r, (size_t)n), MWI_APPLY_REJECTED);
    assert_int_equal(mwi_mirror_apply(m, "bob", r, (size_t)n), MWI_APPLY_ADDED);
    assert_int_equal(mwi_mirror_apply(m, "carol", r, (size_t)n), MWI_APPLY_REJECTED); /* the table is full */
    assert_int_equal(mwi_mirror_apply(m, "bob", NULL, 0), MWI_APPLY_REMOVED);
    assert_int_equal(mwi_mirror_apply(m, "bob", NULL, 0), MWI_APPLY_UNCHANGED);
    assert_int_equal(mwi_store_count(m), 1);
    mwi_store_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_bodies),
        cmocka_unit_test(test_invalid_bodies),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_store_stamps),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_apply_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
