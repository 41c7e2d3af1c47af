/* test_sdnotify.c — the Type=notify sender (app/sdnotify.c) against a real
 * unix datagram socket bound by the test: each message arrives whole as one
 * datagram, at a path or an abstract address; nothing is sent (and nothing
 * fails) without NOTIFY_SOCKET; a bad address is an error, not a crash; the
 * watchdog period is read from WATCHDOG_USEC only when WATCHDOG_PID, if set,
 * names this process. Also the roff of cascade.ini(5) (app/manpage.c): keys
 * as .TP paragraphs, and text that would be a roff request or escape is not. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config.h"
#include "app/manpage.h"
#include "app/sdnotify.h"

/* A datagram socket bound at name ('@x': abstract), non-blocking reads. */
static int bind_listener(const char *name)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    assert_true(len < sizeof(sa.sun_path));
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@') sa.sun_path[0] = '\0';
    else unlink(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
    return fd;
}

/* The next datagram on fd as a string ("" when none is waiting: the sender
 * is synchronous, so a message sent is already queued). */
static const char *next_message(int fd)
{
    static char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void test_no_socket_sends_nothing(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify_send("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_path_socket_gets_each_message_whole(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/test_sdnotify.%d.sock", (int)getpid());
    int fd = bind_listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sdnotify_send("READY=1\nSTATUS=serving"), 1);
    assert_int_equal(sdnotify_send("WATCHDOG=1"), 1);
    assert_string_equal(next_message(fd), "READY=1\nSTATUS=serving");
    assert_string_equal(next_message(fd), "WATCHDOG=1");
    assert_string_equal(next_message(fd), "");
    close(fd);
    unlink(path);
    /* Nobody listening any more: an error value, the caller logs it. */
    assert_true(sdnotify_send("STOPPING=1") < 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@test_sdnotify.%d", (int)getpid());
    int fd = bind_listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(sdnotify_send("STOPPING=1"), 1);
    assert_string_equal(next_message(fd), "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_address_is_an_error(void **state)
{
    (void)state;
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(sdnotify_send("READY=1"), -EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    assert_int_equal(sdnotify_send("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_period(void **state)
{
    (void)state;
    char pid[32];
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(sdnotify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    assert_int_equal(sdnotify_watchdog_usec(), 30000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(sdnotify_watchdog_usec(), 30000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(sdnotify_watchdog_usec(), 0);   /* meant for another process */
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "30s", 1);
    assert_int_equal(sdnotify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "0", 1);
    assert_int_equal(sdnotify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
}

/* ---- cascade.ini(5) */

struct demo {
    char path[32];
    unsigned n;
};

static const struct config_key demo_keys[] = {
    {"path", CONFIG_STRING, CONFIG_FIELD(struct demo, path), "./x-y.db", 0, 0, NULL, 0,
     ".starts with a dot, has a \\ backslash"},
    {"n", CONFIG_UINT, CONFIG_FIELD(struct demo, n), "", 1, 9, NULL, 0, "'quoted start"},
};
static const struct config_section demo_section = {
    .name = "demo", .help = "A demo section.", .keys = demo_keys, .nkeys = 2};
static const struct config_binding demo_bindings[] = {{&demo_section, 0, 0, 0, 0}};
static const struct config_schema demo_schema = {.title = "t", .bindings = demo_bindings, .n = 1};

static void test_manpage_roff(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    manpage_config_print(&demo_schema, f);
    fclose(f);
    assert_non_null(strstr(text, ".SS \"[demo]\"\nA demo section.\n"));
    assert_non_null(strstr(text, ".TP\n.B path\n"));
    /* a hyphen stays a hyphen, a backslash prints as one */
    assert_non_null(strstr(text, "default \\(lq./x\\-y.db\\(rq.\n"));
    assert_non_null(strstr(text, "has a \\e backslash"));
    /* help text that would start a line with . or ' is guarded */
    assert_non_null(strstr(text, ".br\n\\&.starts with a dot"));
    assert_non_null(strstr(text, ".br\n\\&'quoted start"));
    assert_non_null(strstr(text, "integer 1..9; default empty.\n"));
    free(text);
}

/* Every section of the daemon's schema gets a heading. */
static void test_manpage_has_every_section(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    manpage_config_print(&config_schema, f);
    fclose(f);
    for (size_t i = 0; i < config_schema.n; i++) {
        char heading[64];
        snprintf(heading, sizeof(heading), ".SS \"[%s", config_schema.bindings[i].section->name);
        assert_non_null(strstr(text, heading));
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_socket_sends_nothing),
        cmocka_unit_test(test_path_socket_gets_each_message_whole),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_bad_address_is_an_error),
        cmocka_unit_test(test_watchdog_period),
        cmocka_unit_test(test_manpage_roff),
        cmocka_unit_test(test_manpage_has_every_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
