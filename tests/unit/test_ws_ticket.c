/* test_ws_ticket.c — the event stream's single-use tickets
 * (src/api/ws_ticket.h): a ticket opens one upgrade within its lifetime and
 * never a second; expired, unknown and malformed ones are refused; the table
 * stays at its cap by evicting the ticket that expires first. The clock is
 * the caller's: these tests pass their own milliseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/ws_ticket.h"

static int redeem(struct api_tickets *t, uint64_t now, const char *ticket)
{
    return api_tickets_redeem(t, now, ticket, strlen(ticket));
}

static void test_a_ticket_opens_once(void **state)
{
    (void)state;
    struct api_tickets *t = api_tickets_new(8, 30000);
    assert_non_null(t);
    char a[API_TICKET_TEXT + 1], b[API_TICKET_TEXT + 1];
    assert_int_equal(api_tickets_issue(t, 1000, a), 0);
    assert_int_equal(api_tickets_issue(t, 1000, b), 0);
    assert_int_equal(strlen(a), API_TICKET_TEXT);
    assert_string_not_equal(a, b);
    assert_int_equal(redeem(t, 2000, a), 1);
    assert_int_equal(redeem(t, 2000, a), 0); /* used up */
    assert_int_equal(redeem(t, 2000, b), 1); /* the other is still good */
    struct api_tickets_stats st;
    api_tickets_get_stats(t, &st);
    assert_int_equal(st.issued, 2);
    assert_int_equal(st.redeemed, 2);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.outstanding, 0);
    api_tickets_free(t);
}

static void test_expired_tickets_are_refused(void **state)
{
    (void)state;
    struct api_tickets *t = api_tickets_new(8, 30000);
    char a[API_TICKET_TEXT + 1], b[API_TICKET_TEXT + 1];
    assert_int_equal(api_tickets_issue(t, 1000, a), 0);
    assert_int_equal(api_tickets_issue(t, 1000, b), 0);
    assert_int_equal(redeem(t, 30999, a), 1);  /* the last millisecond of its life */
    assert_int_equal(redeem(t, 31000, b), 0);  /* expired */
    assert_int_equal(redeem(t, 2000, b), 0);   /* and gone, even for a clock that went back */
    api_tickets_free(t);
}

static void test_unknown_and_malformed_tickets_are_refused(void **state)
{
    (void)state;
    struct api_tickets *t = api_tickets_new(4, 30000);
    char a[API_TICKET_TEXT + 1];
    assert_int_equal(api_tickets_issue(t, 0, a), 0);
    char other[API_TICKET_TEXT + 1];
    memcpy(other, a, sizeof(other));
    other[0] = other[0] == '0' ? '1' : '0';
    assert_int_equal(redeem(t, 1, other), 0);                  /* one digit off */
    assert_int_equal(redeem(t, 1, ""), 0);
    assert_int_equal(redeem(t, 1, "00000000000000000000000000000000"), 0); /* an empty slot's bytes */
    assert_int_equal(api_tickets_redeem(t, 1, a, API_TICKET_TEXT - 1), 0); /* a prefix */
    char longer[API_TICKET_TEXT + 2];
    snprintf(longer, sizeof(longer), "%s0", a);
    assert_int_equal(redeem(t, 1, longer), 0);
    char upper[API_TICKET_TEXT + 1];
    for (size_t i = 0; i <= API_TICKET_TEXT; i++) upper[i] = (char)(a[i] >= 'a' ? a[i] - 32 : a[i]);
    assert_int_equal(redeem(t, 1, "zz"), 0);
    assert_int_equal(redeem(t, 1, upper), 1); /* hex is hex, in either case */
    api_tickets_free(t);
}

static void test_the_table_keeps_its_cap(void **state)
{
    (void)state;
    enum { CAP = 4 };
    struct api_tickets *t = api_tickets_new(CAP, 30000);
    char tk[CAP + 2][API_TICKET_TEXT + 1];
    for (int i = 0; i < CAP + 2; i++) assert_int_equal(api_tickets_issue(t, (uint64_t)i * 10, tk[i]), 0);
    struct api_tickets_stats st;
    api_tickets_get_stats(t, &st);
    assert_int_equal(st.outstanding, CAP);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(redeem(t, 100, tk[0]), 0); /* the two oldest made room */
    assert_int_equal(redeem(t, 100, tk[1]), 0);
    for (int i = 2; i < CAP + 2; i++) assert_int_equal(redeem(t, 100, tk[i]), 1);
    /* Expired slots are reused before anything good is evicted. */
    for (int i = 0; i < CAP; i++) assert_int_equal(api_tickets_issue(t, 1000, tk[i]), 0);
    assert_int_equal(api_tickets_issue(t, 40000, tk[CAP]), 0);
    api_tickets_get_stats(t, &st);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(redeem(t, 40001, tk[CAP]), 1);
    api_tickets_free(t);
}

static void test_bad_construction(void **state)
{
    (void)state;
    assert_null(api_tickets_new(0, 30000));
    assert_null(api_tickets_new(8, 0));
    assert_null(api_tickets_new(1u << 20, 30000));
    api_tickets_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_ticket_opens_once),
        cmocka_unit_test(test_expired_tickets_are_refused),
        cmocka_unit_test(test_unknown_and_malformed_tickets_are_refused),
        cmocka_unit_test(test_the_table_keeps_its_cap),
        cmocka_unit_test(test_bad_construction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
