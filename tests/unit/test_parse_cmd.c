/* test_parse_cmd.c — `cascade parse FILE...` over the message files in
 * tests/unit/data (the test runs in tests/unit).
 *
 * The command's translation unit is compiled into this test directly so the
 * test also builds when only the base and sip modules are (src/app is not in
 * the library then); in a full build the library's copy is simply not pulled. */
#include "sip_testutil.h"

#include <unistd.h>

#include "../../src/app/parse_cmd.c"

/* Runs the command with stdout captured into out (NUL-terminated). */
static int run(int argc, char **argv, char *out, size_t cap)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    int rc = parse_cmd_main(argc, argv);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return rc;
}

static void test_all_ok(void **state)
{
    (void)state;
    char out[4096];
    char *argv[] = {"parse", "data/options_lf.sip", "data/register_digest.sip", "data/response_401.sip"};
    assert_int_equal(run(4, argv, out, sizeof(out)), 0);
    assert_string_equal(out, "OK OPTIONS lf-only-1\nOK REGISTER 1453346457\nOK 401 1453346457\n");
}

static void test_some_bad(void **state)
{
    (void)state;
    char out[4096];
    char *argv[] = {"parse", "data/cseq_mismatch.sip", "data/options_lf.sip", "data/does-not-exist.sip"};
    assert_int_equal(run(4, argv, out, sizeof(out)), 1);
    static const char want[] = "BAD CSeq method mismatch\nOK OPTIONS lf-only-1\nBAD data/does-not-exist.sip: ";
    assert_memory_equal(out, want, sizeof(want) - 1);
    assert_non_null(strstr(out, "No such file"));
}

static void test_usage(void **state)
{
    (void)state;
    char out[64];
    char *argv[] = {"parse"};
    assert_int_equal(run(1, argv, out, sizeof(out)), 2);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ok),
        cmocka_unit_test(test_some_bad),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
