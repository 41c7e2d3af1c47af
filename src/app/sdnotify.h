/* sdnotify.h — tells a service manager how the daemon is doing (systemd's
 * Type=notify protocol, sd_notify(3)): READY=1 once cascade listens,
 * STOPPING=1 when SIGTERM or SIGINT arrives, WATCHDOG=1 from a loop timer
 * when the manager asked for it (WATCHDOG_USEC). Without NOTIFY_SOCKET in
 * the environment every call does nothing, so a daemon started by hand or by
 * a test is unaffected.
 *
 * Messages go through libsystemd's sd_notify when cascade was built with it
 * (CASCADE_HAVE_LIBSYSTEMD), else through a built-in sender: the protocol is
 * one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket NOTIFY_SOCKET
 * names (a path, or '@' for the abstract namespace).
 *
 * The handles hang off the caller's loop but are unreferenced: they never
 * keep uv_run going, so the worker's stop alone ends the loop. */
#ifndef CASCADE_APP_SDNOTIFY_H
#define CASCADE_APP_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct sdnotify {
    uv_signal_t sigterm, sigint;      /* STOPPING=1 (the worker has its own handlers that stop it) */
    uv_timer_t watchdog;              /* WATCHDOG=1 every half WATCHDOG_USEC */
    bool started, stopping_sent;
};

/* Sends state ("READY=1", "STOPPING=1\nSTATUS=..."): 1 sent, 0 no manager
 * (NOTIFY_SOCKET unset), -errno when the socket refused it. */
int sdnotify_send(const char *state);

/* The watchdog interval the manager asked for in microseconds, 0 for none
 * (WATCHDOG_USEC unset, bad, or WATCHDOG_PID naming another process). */
uint64_t sdnotify_watchdog_usec(void);

/* Call once the daemon listens: sends READY=1 and arms the signal handlers
 * and the watchdog timer on loop. Does nothing without NOTIFY_SOCKET. */
void sdnotify_start(struct sdnotify *sd, uv_loop_t *loop);

/* Call when uv_run returned: STOPPING=1 unless a signal already sent it, and
 * the handles closed (the caller runs the loop once more for their close). */
void sdnotify_stop(struct sdnotify *sd);

#endif
