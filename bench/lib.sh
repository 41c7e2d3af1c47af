# bench/lib.sh — shell pieces the bench/*.sh scripts share: free ports, CPU and
# RSS readers from /proc, writing a cascade ini and starting cascade, starting
# Kamailio from ../shared/bench, reading sipp's statistics CSV, and cleanup.
# Sourced, not run: `. "$root/bench/lib.sh"` after `set -euo pipefail`.
# The functions use the script's own variables where they say so: work (the
# work dir), build (cascade's build dir), shared (../shared/bench),
# server_pid, and server_cpus / server_cgroup for the server's CPU placement.
# shellcheck shell=bash disable=SC2154

# Where the server runs: anywhere unless the script sets these (register-sweep.sh
# does, from SERVER_CPUS and SERVER_QUOTA).
server_cpus=
server_cgroup=

# A UDP port on 127.0.0.1 that the kernel says is free now.
free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A random port P in 20000..59000 with UDP P and TCP P+1 free on 127.0.0.1
# (SIP on P, the API on P+1).
free_port_pair() {
    python3 -c '
import socket, random
for _ in range(200):
    p = random.randint(20000, 59000)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p + 1))
        s.close(); t.close(); print(p); break
    except OSError:
        pass'
}

# A process and its children (Kamailio forks its workers), one pid a word.
proc_tree() {
    # shellcheck disable=SC2046 # one word per child pid
    echo "$1" $(pgrep -P "$1" || true)
}

# CPU ticks (user + sys, CLK_TCK a second) of one process.
proc_cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Resident memory of one process in KiB.
proc_rss_kib() {
    awk '/VmRSS/ {print $2}' "/proc/$1/status"
}

# "user sys" CPU ticks of a process and its children; a child that has
# already gone counts 0.
tree_cpu_user_sys() {
    local u=0 s=0 p a b
    for p in $(proc_tree "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
        u=$((u + a)); s=$((s + b))
    done
    echo "$u $s"
}

# cpu_sum PID...: user+sys ticks of each PID's process tree, summed.
cpu_sum() {
    local p t=0 u s
    for p in "$@"; do
        read -r u s < <(tree_cpu_user_sys "$p")
        t=$((t + u + s))
    done
    echo "$t"
}

# Context switches (voluntary + involuntary) of every thread of a process and
# its children: each voluntary one is a wake-up after blocking.
tree_ctxsw() {
    local n=0 p t v
    for p in $(proc_tree "$1"); do
        for t in /proc/$p/task/*; do
            v=$(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "$t/status" 2>/dev/null) || continue
            n=$((n + v))
        done
    done
    echo "$n"
}

# CPU ticks (user + sys) of a process and its children.
tree_cpu_ticks() {
    local u s
    read -r u s < <(tree_cpu_user_sys "$1")
    echo $((u + s))
}

# Percent of one core that TICKS1 - TICKS0 CPU ticks are over SECS seconds,
# with SCALE decimals (bc).
cpu_percent() {
    echo "scale=$4; ($2 - $1) * 100 / $(getconf CLK_TCK) / $3" | bc
}

# Kill each pid given (empty ones skipped), ignoring those already gone.
kill_quietly() {
    local p
    for p in "$@"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
}

# EXIT trap of the one-shot benches: kill the pids given, as kill_quietly,
# and remove $work.
kill_and_remove_work() {
    kill_quietly "$@"
    rm -rf "$work"
}

# Stop the server: TERM, and wait for it.
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# The end of the sweeps' EXIT trap: the server gets TERM, then KILL 0.3 s later;
# the work dir goes, or is named and kept with KEEP_WORK=1.
kill_server_and_clean() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    sleep 0.3
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ]; then echo "work dir: $work"; else rm -rf "$work"; fi
}

# Run (exec, from a background subshell) a server command with the CPU
# placement asked for: taskset to $server_cpus, and the cgroup $server_cgroup
# joined by the shell before exec, so every process and thread it makes is
# inside. Neither set: the command runs as is.
server_exec() {
    local pre=()
    [ -n "$server_cpus" ] && pre=(taskset -c "$server_cpus")
    if [ -n "$server_cgroup" ]; then
        exec bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$server_cgroup" "${pre[@]}" "$@"
    else
        exec "${pre[@]}" "$@"
    fi
}

# Print "NAME did not start" and $work/NAME.log, and end the script.
fail_start() {
    echo "$1 did not start"; cat "$work/$1.log"; exit 1
}

# Wait up to 5 s for something to listen on UDP PORT; 1 if nothing did.
wait_udp_listen() {
    for _ in $(seq 1 50); do
        ss -Hunl "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# Start Kamailio with $shared/CFG and SHM_MB MiB of shared memory in the
# background (server_exec placement, log $work/kamailio.log), set server_pid,
# and wait until it listens on UDP PORT; end the script if it does not.
start_kamailio_cfg() {
    server_exec kamailio -f "$shared/$1" -DD -E -w "$work" -m "$2" -M 32 >"$work/kamailio.log" 2>&1 &
    server_pid=$!
    wait_udp_listen "$3" || fail_start kamailio
}

# Write $work/c.ini: [sip] listening on SIP_LISTEN, then the lines on stdin
# (the rest of [sip] and the bench's own sections), [api] on API_LISTEN with
# TOKEN (no token line when empty), the store in $work and log LEVEL.
cascade_write_ini() {
    {
        printf '[sip]\nlisten = %s\n' "$1"
        cat
        printf '[api]\nlisten =%s\n' "${2:+ $2}"
        [ -n "$3" ] && printf 'token = %s\n' "$3"
        printf '[store]\npath = %s\n[log]\nlevel = %s\n' "$work/c.db" "$4"
        # COMMIT_WINDOW_MS: the store's group-commit window ([store] commit_window_ms).
        if [ -n "${COMMIT_WINDOW_MS:-}" ]; then printf '[store]\ncommit_window_ms = %s\n' "$COMMIT_WINDOW_MS"; fi
        # EXTRA_INI: more ini lines, e.g. $'[overload]\nenabled = no'.
        if [ -n "${EXTRA_INI:-}" ]; then printf '%s\n' "$EXTRA_INI"; fi
    } >"$work/c.ini"
}

# The ini of the REGISTER benches: registrar on udp:127.0.0.1:PORT, realm
# 127.0.0.1 with [auth] match_user = no (any AoR registers with the one digest
# user), the API on 127.0.0.1:API_PORT, token bench.
cascade_registrar_ini() {
    cascade_write_ini "udp:127.0.0.1:$1" "127.0.0.1:$2" bench "${LOG_LEVEL:-warn}" <<INI
domain = 127.0.0.1
[auth]
realm = 127.0.0.1
match_user = no
[registrar]
max_expires = 3600
INI
}

# The ini of the benches that hold cascade-gbsim devices: GB upper on
# udp:127.0.0.1:PORT, domain 3402000000, default password, allow_unknown,
# KEEPALIVE s keepalives (3 misses), catalog_on_register CATALOG, the API on
# 127.0.0.1:API_PORT with token t, log LEVEL.
cascade_gbsim_ini() {
    cascade_write_ini "udp:127.0.0.1:$1" "127.0.0.1:$2" t "$5" <<INI
domain = 3402000000
[gb]
enabled = yes
password = 12345678
allow_unknown = yes
keepalive_interval = $3
keepalive_misses = 3
catalog_on_register = $4
INI
}

# Start cascade on $work/c.ini in the background (server_exec placement, log
# $work/cascade.log) and set server_pid.
start_cascade_ini() {
    server_exec "$build/cascade" -c "$work/c.ini" >"$work/cascade.log" 2>&1 &
    server_pid=$!
}

# Add the SIP user NAME, password secret, through the API on
# 127.0.0.1:API_PORT (token bench), retrying for 5 s while cascade starts;
# 1 if it never answered.
cascade_add_user() {
    for _ in $(seq 1 50); do
        curl -sf -X POST -H 'Authorization: Bearer bench' -d "{\"name\":\"$2\",\"password\":\"secret\"}" \
            "http://127.0.0.1:$1/api/v1/users" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Start a fresh cascade (an empty store) on free ports with the ini that
# WRITE_INI PORT API_PORT writes, and add the SIP user NAME (password secret):
# sets cport, aport and server_pid; ends the script if cascade does not come up.
start_fresh_cascade() {
    # The API port checked free for TCP (a UDP-free port may be held by a
    # TCP socket, e.g. one in TIME_WAIT, and the API then cannot listen).
    cport=$(free_port_pair)
    aport=$((cport + 1))
    rm -f "$work"/c.db*
    "$1" "$cport" "$aport"
    start_cascade_ini
    cascade_add_user "$aport" "$2" || fail_start cascade
}

# $work/users.csv for sipp -inf: N AoRs u0..u<N-1>, password secret, in order.
write_users_csv() {
    local i
    { echo SEQUENTIAL; for i in $(seq 0 $(($1 - 1))); do echo "u$i;secret"; done; } >"$work/users.csv"
}

# The most calls one step of a sweep makes: the largest of RATES (a list) x SECS.
max_step_calls() {
    local most=0 r
    for r in $1; do most=$((most > r * $2 ? most : r * $2)); done
    echo "$most"
}

# "successful failed retransmissions" call counts from the last line of a
# sipp statistics CSV (-trace_stat -stf).
sipp_csv_counts() {
    python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';')); h = rows[0]; last = rows[-1]
print(*(int(last[h.index(c)]) for c in ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)")))
PY
}

# "achieved/s failed retransmissions cpu_s" of one sweep step: sipp's counts
# from its statistics CSV over the wall time T0..T1 (date +%s.%N), and the
# server's CPU seconds from its CPU ticks TICKS0..TICKS1.
sipp_step_figures() {
    local ok bad rt
    read -r ok bad rt < <(sipp_csv_counts "$1")
    python3 -c 'import sys; ok, bad, rt, t0, t1, c0, c1, hz = map(float, sys.argv[1:]); print("%.0f %d %d %.2f" % (ok / (t1 - t0), bad, rt, (c1 - c0) / hz))' \
        "$ok" "$bad" "$rt" "$2" "$3" "$4" "$5" "$(getconf CLK_TCK)"
}

# "RESULT ratio cascade/kamailio: R" for the two best rates of a sweep.
print_ratio() {
    python3 -c "import sys; k, c = float(sys.argv[1]), float(sys.argv[2]); print('RESULT ratio cascade/kamailio: %.2f' % (c / k if k else 0))" "$1" "$2"
}

# ---- Redis for the benches that put state in it (register-cpu.sh,
# cluster-register.sh) ----
# redis_start MODE [CPUS]: Debian's redis-server on free loopback ports under
# $work, in memory only, on the CPU list CPUS (taskset; empty: anywhere).
# MODE standalone: one plain server. MODE cluster:N: N cluster-mode masters
# with their bus ports named (the default, port + 10000, may not be free); N
# >= 3 joined by `redis-cli --cluster create`, below that the first one holds
# every slot (what cascade's cluster client needs). Appends to redis_ports
# and redis_pids; returns once the server answers (cluster: cluster_state:ok),
# exits with its log otherwise. The caller kills redis_pids when done.
redis_ports=()
redis_pids=()
redis_start() {
    local mode=$1 cpus=${2:-} n=1 cluster=0 i p bus d pre=() extra=() new=() addrs=()
    case $mode in
    standalone) ;;
    cluster:*) cluster=1; n=${mode#cluster:} ;;
    *) echo "redis_start: unknown mode $mode"; exit 1 ;;
    esac
    [ -n "$cpus" ] && pre=(taskset -c "$cpus")
    for ((i = 0; i < n; i++)); do
        p=$(free_port); d="$work/redis-$p"; extra=()
        mkdir -p "$d"
        if [ "$cluster" = 1 ]; then
            bus=$(free_port)
            extra=(--cluster-enabled yes --cluster-config-file "$d/nodes.conf" --cluster-port "$bus")
        fi
        "${pre[@]}" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$d" \
            --logfile "$d/log" "${extra[@]}" &
        redis_pids+=("$!")
        redis_ports+=("$p")
        new+=("$p")
        addrs+=("127.0.0.1:$p")
    done
    for p in "${new[@]}"; do
        for _ in $(seq 1 50); do
            [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
            sleep 0.1
        done
        [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] || { echo "redis-server did not start"; cat "$work/redis-$p/log"; exit 1; }
    done
    [ "$cluster" = 1 ] || return 0
    if [ "$n" -ge 3 ]; then
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$work/redis-create.log" 2>&1
    else
        redis-cli -p "${new[0]}" cluster addslotsrange 0 16383 >/dev/null
    fi
    for _ in $(seq 1 100); do
        redis-cli -p "${new[0]}" cluster info | grep -q 'cluster_state:ok' && return 0
        sleep 0.1
    done
    echo "the Redis Cluster did not come up"; cat "$work/redis-create.log" 2>/dev/null; exit 1
}
