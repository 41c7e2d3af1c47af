/* sdnotify.c — the Type=notify messages of sdnotify.h: the sender (libsystemd
 * or built in) and the loop hooks that decide when to send. */
#include "app/sdnotify.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef CASCADE_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "base/log.h"

#ifdef CASCADE_HAVE_LIBSYSTEMD
int sdnotify_send(const char *state)
{
    int rc = sd_notify(0, state);
    return rc > 0 ? 1 : rc;
}
#else
/* One datagram to NOTIFY_SOCKET; a fresh socket each time, as messages are
 * a handful per run plus one per watchdog period. */
int sdnotify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0]) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) return -EINVAL;
    memcpy(sa.sun_path, path, plen);
    /* '@': an abstract socket, whose name starts with a NUL byte and has
     * exactly plen bytes (no terminator counted). */
    if (path[0] == '@') sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    size_t len = strlen(state);
    ssize_t n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    int rc = n == (ssize_t)len ? 1 : n < 0 ? -errno : -EMSGSIZE;
    close(fd);
    return rc;
}
#endif

uint64_t sdnotify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || !usec[0]) return 0;
    /* The manager may set these for another process of the unit. */
    if (pid && pid[0] && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno || *end || v == 0) return 0;
    return v;
}

static void send_stopping(struct sdnotify *sd)
{
    if (sd->stopping_sent) return;
    sd->stopping_sent = true;
    sdnotify_send("STOPPING=1\nSTATUS=stopping");
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    send_stopping(h->data);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sdnotify_send("WATCHDOG=1");
}

void sdnotify_start(struct sdnotify *sd, uv_loop_t *loop)
{
    memset(sd, 0, sizeof(*sd));
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0]) return;
    int rc = sdnotify_send("READY=1\nSTATUS=serving");
    if (rc < 0) log_warn("sd_notify: READY=1 to %s not sent: %s", path, strerror(-rc));
    sd->started = true;
    uv_signal_init(loop, &sd->sigterm);
    uv_signal_init(loop, &sd->sigint);
    sd->sigterm.data = sd->sigint.data = sd;
    uv_signal_start(&sd->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&sd->sigint, on_stop_signal, SIGINT);
    uv_unref((uv_handle_t *)&sd->sigterm);
    uv_unref((uv_handle_t *)&sd->sigint);
    uv_timer_init(loop, &sd->watchdog);
    uv_unref((uv_handle_t *)&sd->watchdog);
    uint64_t usec = sdnotify_watchdog_usec();
    if (usec) {
        /* Half the period, as sd_watchdog_enabled(3) advises: one late loop
         * turn must not make systemd kill a healthy daemon. */
        uint64_t ms = usec / 2000;
        if (ms == 0) ms = 1;
        uv_timer_start(&sd->watchdog, on_watchdog, ms, ms);
        log_info("sd_notify: watchdog every %llu ms", (unsigned long long)ms);
    }
}

void sdnotify_stop(struct sdnotify *sd)
{
    if (!sd->started) return;
    send_stopping(sd);
    sd->started = false;
    uv_close((uv_handle_t *)&sd->sigterm, NULL);
    uv_close((uv_handle_t *)&sd->sigint, NULL);
    uv_close((uv_handle_t *)&sd->watchdog, NULL);
}
