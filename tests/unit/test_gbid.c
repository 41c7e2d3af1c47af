/* test_gbid.c — GB/T 28181 20-digit ids and the SSRC allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gb/codec/gbid.h"

static void test_ids(void **state)
{
    (void)state;
    assert_true(gb_id_valid(STR_LIT("34020000001320000001")));
    assert_false(gb_id_valid(STR_LIT("3402000000132000000")));
    assert_false(gb_id_valid(STR_LIT("340200000013200000011")));
    assert_false(gb_id_valid(STR_LIT("3402000000132000000a")));
    assert_false(gb_id_valid(STR_NULL));
    char dom[GB_DOMAIN_LEN + 1];
    assert_int_equal(gb_id_domain(STR_LIT("34020000001320000001"), dom), 0);
    assert_string_equal(dom, "3402000000");
    assert_int_equal(gb_id_domain(STR_LIT("x"), dom), -1);
    assert_int_equal(gb_id_type(STR_LIT("34020000001320000001")), GB_TYPE_IPC);
    assert_int_equal(gb_id_type(STR_LIT("34020000001310000001")), GB_TYPE_CAMERA);
    assert_int_equal(gb_id_type(STR_LIT("34020000002000000001")), GB_TYPE_SIP_SERVER);
    assert_int_equal(gb_id_type(STR_LIT("34020000001180000001")), GB_TYPE_NVR);
    assert_int_equal(gb_id_type(STR_LIT("34020000002150000001")), GB_TYPE_BUSINESS_GROUP);
    assert_int_equal(gb_id_type(STR_LIT("34020000002160000001")), GB_TYPE_VIRTUAL_ORG);
    assert_int_equal(gb_id_type(STR_LIT("3402000000200000000")), -1);
}

static void test_ssrc_alloc(void **state)
{
    (void)state;
    gb_ssrc_alloc_t a;
    assert_int_equal(gb_ssrc_alloc_init(&a, STR_LIT("34020")), -1);
    assert_int_equal(gb_ssrc_alloc_init(&a, STR_LIT("340200000a")), -1);
    /* Domain 3402000000 -> digits [3..8) = "20000". */
    assert_int_equal(gb_ssrc_alloc_init(&a, STR_LIT("3402000000")), 0);
    assert_string_equal(a.prefix, "20000");
    char s[GB_SSRC_LEN + 1];
    assert_int_equal(gb_ssrc_alloc(&a, false, s), 0);
    assert_string_equal(s, "0200000001");
    assert_int_equal(gb_ssrc_alloc(&a, true, s), 0);
    assert_string_equal(s, "1200000002");
    uint32_t v;
    assert_int_equal(gb_ssrc_to_u32(str_from_cstr(s), &v), 0);
    assert_int_equal(v, 1200000002u);
    assert_int_equal(gb_ssrc_to_u32(STR_LIT("2200000002"), &v), -1);
    assert_int_equal(gb_ssrc_to_u32(STR_LIT("120000000"), &v), -1);

    /* A full id works as the domain too: 44010200492000000001 -> "10200". */
    gb_ssrc_alloc_t b;
    assert_int_equal(gb_ssrc_alloc_init(&b, STR_LIT("44010200492000000001")), 0);
    assert_int_equal(gb_ssrc_alloc(&b, false, s), 0);
    assert_string_equal(s, "0102000001");

    /* Release and claim. */
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0200000001")), 0);
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0200000001")), -1); /* already free */
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0999990001")), -1); /* other prefix */
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0200000000")), -1); /* serial 0 never used */
    assert_int_equal(a.in_use, 1);
    /* Rotation: the freed serial 1 is not reused at once. */
    assert_int_equal(gb_ssrc_alloc(&a, false, s), 0);
    assert_string_equal(s, "0200000003");
    /* A claimed serial is skipped. */
    assert_int_equal(gb_ssrc_claim(&a, STR_LIT("1200000004")), 0);
    assert_int_equal(gb_ssrc_claim(&a, STR_LIT("0200000004")), -1); /* taken (live/history share serials) */
    assert_int_equal(gb_ssrc_alloc(&a, false, s), 0);
    assert_string_equal(s, "0200000005");
}

static void test_ssrc_exhaust_and_wrap(void **state)
{
    (void)state;
    gb_ssrc_alloc_t a;
    assert_int_equal(gb_ssrc_alloc_init(&a, STR_LIT("3402000000")), 0);
    char s[GB_SSRC_LEN + 1];
    for (int i = 1; i <= 9999; i++) {
        assert_int_equal(gb_ssrc_alloc(&a, false, s), 0);
        char want[GB_SSRC_LEN + 1];
        snprintf(want, sizeof(want), "020000%04d", i);
        assert_string_equal(s, want);
    }
    assert_int_equal(a.in_use, 9999);
    assert_int_equal(gb_ssrc_alloc(&a, false, s), -1);
    /* Free two in the middle: allocation wraps past 9999 to 1 and finds them. */
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0200005000")), 0);
    assert_int_equal(gb_ssrc_release(&a, STR_LIT("0200000042")), 0);
    assert_int_equal(gb_ssrc_alloc(&a, true, s), 0);
    assert_string_equal(s, "1200000042");
    assert_int_equal(gb_ssrc_alloc(&a, false, s), 0);
    assert_string_equal(s, "0200005000");
    assert_int_equal(gb_ssrc_alloc(&a, false, s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_ssrc_alloc),
        cmocka_unit_test(test_ssrc_exhaust_and_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
