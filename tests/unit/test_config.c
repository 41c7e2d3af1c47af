/* test_config.c — config parsing pieces that have logic of their own:
 * [proxy] trusted address blocks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "base/config.h"

static bool matches(const struct config *c, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return config_cidr_match(c->proxy.trusted, c->proxy.trusted_count, (const struct sockaddr *)&ss);
}

static void test_trusted_blocks(void **state)
{
    (void)state;
    struct config c;
    config_init(&c);
    assert_int_equal(c.proxy.trusted_count, 0);
    assert_false(matches(&c, "127.0.0.1"));
    assert_int_equal(config_parse_trusted(&c, "192.0.2.10, 10.0.0.0/8,172.16.0.0/12 2001:db8::/32, 198.51.100.0/25"), 0);
    assert_int_equal(c.proxy.trusted_count, 5);
    assert_true(matches(&c, "192.0.2.10"));
    assert_false(matches(&c, "192.0.2.11"));      /* a bare address is a /32 */
    assert_true(matches(&c, "10.255.1.2"));
    assert_false(matches(&c, "11.0.0.1"));
    assert_true(matches(&c, "172.31.255.255"));    /* /12: 172.16-31 */
    assert_false(matches(&c, "172.32.0.1"));
    assert_true(matches(&c, "198.51.100.127"));    /* /25: .0-.127 */
    assert_false(matches(&c, "198.51.100.128"));
    assert_true(matches(&c, "2001:db8:ffff::1"));
    assert_false(matches(&c, "2001:db9::1"));
    assert_false(matches(&c, "::ffff:10.0.0.1"));  /* v4-mapped v6 is not v4 here */
    /* Refused: not an address, bits out of range, too many. */
    assert_int_equal(config_parse_trusted(&c, "gateway.example.com"), -1);
    assert_int_equal(config_parse_trusted(&c, "10.0.0.0/33"), -1);
    assert_int_equal(config_parse_trusted(&c, "2001:db8::/129"), -1);
    assert_int_equal(config_parse_trusted(&c, "10.0.0.0/x"), -1);
    char many[2048] = "";
    for (int i = 0; i <= CONFIG_MAX_TRUSTED; i++) {
        char one[32];
        snprintf(one, sizeof(one), "10.0.%d.0/24,", i);
        strcat(many, one);
    }
    assert_int_equal(config_parse_trusted(&c, many), -1);
    /* 0.0.0.0/0 takes every IPv4 source. */
    assert_int_equal(config_parse_trusted(&c, "0.0.0.0/0"), 0);
    assert_true(matches(&c, "203.0.113.9"));
    assert_false(matches(&c, "2001:db8::1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
