#!/usr/bin/env bash
# systemd's Type=notify protocol without systemd (issue 17): a python3 unix
# datagram socket stands for the manager. cascade started with NOTIFY_SOCKET
# sends READY=1 once it listens (SIP answers by then), WATCHDOG=1 repeatedly
# when WATCHDOG_USEC asks for it, STOPPING=1 on SIGTERM, and exits 0. An
# abstract socket ('@name') works too, and a WATCHDOG_PID naming another
# process turns the watchdog off (the manager meant someone else).
source "$(dirname "$0")/lib.sh"

# listen NAME ADDRESS: a datagram socket at ADDRESS ('@x': abstract) writing
# each message it gets as one line (newlines shown as ' | ') to $WORK/NAME.msgs.
listen() {
    local name=$1 addr=$2
    python3 - "$addr" "$WORK/$name.msgs" "$WORK/$name.bound" <<'PY' &
import socket, sys
addr, out, bound = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(bound, "w").close()
with open(out, "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " | ") + "\n")
        f.flush()
PY
    PIDS+=("$!")
    wait_for 30 test -e "$WORK/$name.bound"
}
got() { grep -q -- "$2" "$WORK/$1.msgs" 2>/dev/null; }   # got NAME PATTERN

# run NAME [VAR=VALUE...]: the daemon with the environment given, on its own
# ports; its pid in NAME_PID.
run() {
    local name=$1; shift
    local port api
    port=$(free_port); api=$((port + 1))   # free_port keeps the next three free too
    node_ini "$name" "$port" "$api" cascade.test </dev/null
    (cd "$WORK" && exec env "$@" "$CASCADE" -c "$WORK/$name.ini" >"$WORK/$name.log" 2>&1) &
    PIDS+=("$!")
    eval "${name}_PID=$!"
    eval "${name}_PORT=$port"
}
API_TOKEN=tok

# ---- a path socket, with a watchdog of 0.4 s (WATCHDOG=1 every 0.2 s)
listen a "$WORK/notify.sock"
run a NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=400000
check "READY=1 arrives" wait_for 60 got a "READY=1"
check "... once SIP is served (OPTIONS answered at once)" \
    bash -c "sipsak -s sip:ping@127.0.0.1:$a_PORT -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
check "... with a STATUS line" got a "STATUS=serving"
check "... only once" test "$(grep -c 'READY=1' "$WORK/a.msgs")" = 1
check "WATCHDOG=1 arrives" wait_for 60 got a "^WATCHDOG=1$"
watchdogs() { grep -c '^WATCHDOG=1$' "$WORK/a.msgs"; }
more_watchdogs() { [ "$(watchdogs)" -gt "$1" ]; }
check "... again and again (a timer on the loop)" wait_for 60 more_watchdogs "$(watchdogs)"
check "no STOPPING=1 while serving" not got a "STOPPING=1"
kill -TERM "$a_PID"
check "SIGTERM: STOPPING=1 arrives" wait_for 60 got a "STOPPING=1"
check "... and cascade exits" wait_for 60 not kill -0 "$a_PID"
RC=0; wait "$a_PID" || RC=$?
check "... with status 0" test "$RC" = 0
check "... STOPPING=1 sent once" test "$(grep -c 'STOPPING=1' "$WORK/a.msgs")" = 1
check "... READY=1 came before STOPPING=1" \
    test "$(grep -n 'READY=1' "$WORK/a.msgs" | cut -d: -f1)" -lt "$(grep -n 'STOPPING=1' "$WORK/a.msgs" | cut -d: -f1)"

# ---- an abstract socket; WATCHDOG_PID of another process (pid 1): no watchdog
B_ADDR="@cascade-notify-$$-$RANDOM"
listen b "$B_ADDR"
run b NOTIFY_SOCKET="$B_ADDR" WATCHDOG_USEC=400000 WATCHDOG_PID=1
check "abstract socket: READY=1 arrives" wait_for 60 got b "READY=1"
check "... the log says no watchdog (WATCHDOG_PID is another process)" not grep -q "watchdog every" "$WORK/b.log"
kill -TERM "$b_PID"
check "... STOPPING=1 on SIGTERM" wait_for 60 got b "STOPPING=1"
check "... and cascade exits" wait_for 60 not kill -0 "$b_PID"
check "... having sent no WATCHDOG=1" not got b "WATCHDOG=1"

# ---- without NOTIFY_SOCKET: serves as ever (the other tests), nothing to send
check "the first run logged its watchdog period (0.2 s)" grep -q "sd_notify: watchdog every 200 ms" "$WORK/a.log"
finish
