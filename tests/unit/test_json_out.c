/* test_json_out.c — JSON text with a cap (src/base/json_out.c): the
 * compact text within its cap, refused one byte over it (nothing handed
 * out), exactly at it kept; a buffer that holds the text and its NUL, and
 * one byte short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_out.h"

#define TEXT "{\"a\":\"x y\",\"n\":12}" /* compact: no space after ':' or ',' */

static void test_dup(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s,s:i}", "a", "x y", "n", 12);
    assert_non_null(o);
    size_t len = strlen(TEXT);
    char *out = (char *)1;
    assert_int_equal(json_out_dup(o, len, &out), (int)len);
    assert_string_equal(out, TEXT);
    free(out);
    out = (char *)1;
    assert_int_equal(json_out_dup(o, len - 1, &out), -ENOSPC);
    assert_null(out);
    out = (char *)1;
    assert_int_equal(json_out_dup(NULL, 100, &out), -ENOMEM);
    assert_null(out);
    json_decref(o);
}

static void test_buf(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s,s:i}", "a", "x y", "n", 12);
    assert_non_null(o);
    size_t len = strlen(TEXT);
    char buf[64];
    memset(buf, '#', sizeof(buf));
    assert_int_equal(json_out_buf(o, buf, len + 1), (int)len);
    assert_string_equal(buf, TEXT);
    assert_int_equal(json_out_buf(o, buf, len), -ENOSPC); /* no room for its NUL */
    assert_int_equal(json_out_buf(o, buf, 0), -ENOSPC);
    assert_int_equal(json_out_buf(NULL, buf, sizeof(buf)), -ENOMEM);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
