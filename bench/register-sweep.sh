#!/usr/bin/env bash
# Authenticated REGISTER/s, cascade vs Kamailio, in one run on this machine.
#
# Usage: bench/register-sweep.sh [BUILD_DIR]
#   RATES="2000 4000 ..."   offered rates (REGISTER transactions pairs/s, i.e. sipp calls/s)
#   SECS=10                 seconds per step
#   SHARED=../shared/bench  where kamailio-registrar.cfg and register-auth.xml live
#   SIPP_ARGS="-buff_size 4194304"  extra sipp options (default: 4 MiB socket
#                           buffers, without which sipp drops answers on its own
#                           socket above ~12 000/s, whichever server it drives)
#   SERVERS="kamailio cascade"  which servers to run (default both)
#   SERVER_CPUS=1           pin the server (every process and thread) to these CPUs
#   SIPP_CPUS=0             pin sipp to these CPUs
#   SERVER_QUOTA=50         cap the server at this percent of one core (cgroup v1
#                           cpu controller, 10 ms period), the same cap for both
#                           servers: what each does with the same CPU budget,
#                           with the load generator outside that budget
#
# Each step starts a fresh server (Kamailio 2 children, in-memory usrloc, as
# in ../shared/bench/kamailio-registrar.cfg; cascade with SQLite persistence
# on, [auth] match_user = no, user bench/secret), runs sipp with
# register-auth.xml (REGISTER, 401, REGISTER with digest, 200; AoR from
# users.csv, digest user from -au bench -ap secret) at the offered rate for
# SECS seconds, and records what sipp achieved, failures, retransmissions and
# the server's and sipp's CPU seconds. Steps run one at a time (sipp and the server
# share the 2 cores). Prints a table and, per server, the highest offered
# rate with 0 failed calls, then the ratio. Not a test: it takes both cores
# for a few minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-2000 4000 6000 8000 10000 12000 15000}
secs=${SECS:-10}
work=$(mktemp -d /tmp/cascade-regbench.XXXXXX)
kport=5070            # fixed by kamailio-registrar.cfg
server_pid=
cg=
server_cpus=${SERVER_CPUS:-}
sipp_cpus=${SIPP_CPUS:-}
quota=${SERVER_QUOTA:-}
if [ -n "$quota" ]; then
    cg=/sys/fs/cgroup/cpu/cascade-bench.$$
    mkdir "$cg"
    echo 10000 >"$cg/cpu.cfs_period_us"
    echo $((quota * 100)) >"$cg/cpu.cfs_quota_us"
fi
# Run (exec, from a background subshell) a server command with the CPU placement asked for; the cgroup is joined
# by the shell before exec, so every process and thread it makes is inside.
server_exec() {
    local pre=()
    [ -n "$server_cpus" ] && pre=(taskset -c "$server_cpus")
    if [ -n "$cg" ]; then
        exec bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$cg" "${pre[@]}" "$@"
    else
        exec "${pre[@]}" "$@"
    fi
}
sipp_pre=()
[ -n "$sipp_cpus" ] && sipp_pre=(taskset -c "$sipp_cpus")

cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    sleep 0.3
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    [ -n "$cg" ] && rmdir "$cg" 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ]; then echo "work dir: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# CPU seconds (user+sys) of a process and its children (Kamailio forks).
cpu_of() {
    local pid=$1 total=0 p
    for p in $pid $(pgrep -P "$pid" || true); do
        [ -r /proc/$p/stat ] || continue
        total=$((total + $(awk '{print $14 + $15}' /proc/$p/stat)))
    done
    echo "$total"
}

max_calls=0
for r in $rates; do max_calls=$((max_calls > r * secs ? max_calls : r * secs)); done
{ echo SEQUENTIAL; for i in $(seq 0 $((max_calls - 1))); do echo "u$i;secret"; done; } >"$work/users.csv"

start_kamailio() {
    server_exec kamailio -f "$shared/kamailio-registrar.cfg" -DD -E -w "$work" -m 512 -M 32 >"$work/kamailio.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        ss -Hunl "sport = :$kport" | grep -q . && return 0
        sleep 0.1
    done
    echo "kamailio did not start"; cat "$work/kamailio.log"; exit 1
}

start_cascade() {
    cport=$(free_port)
    aport=$(free_port)
    rm -f "$work"/c.db*
    cat >"$work/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:$cport
domain = 127.0.0.1
[auth]
realm = 127.0.0.1
match_user = no
[registrar]
max_expires = 3600
[api]
listen = 127.0.0.1:$aport
token = bench
[store]
path = $work/c.db
[log]
level = warn
INI
    server_exec "$build/cascade" -c "$work/c.ini" >"$work/cascade.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        if curl -sf -X POST -H 'Authorization: Bearer bench' -d '{"name":"bench","password":"secret"}' \
            "http://127.0.0.1:$aport/api/v1/users" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "cascade did not start"; cat "$work/cascade.log"; exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# run_step PORT RATE -> "achieved failed retrans cpu_s"
run_step() {
    local port=$1 rate=$2 t0 t1 c0 c1
    rm -f "$work/s.csv" "$work/sipp.time"
    c0=$(cpu_of "$server_pid")
    t0=$(date +%s.%N)
    (cd "$work" && /usr/bin/time -f "%U %S" -o sipp.time timeout $((secs + 60)) "${sipp_pre[@]}" sipp "127.0.0.1:$port" -sf "$shared/register-auth.xml" -inf users.csv \
        -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -nostdin -trace_stat -stf s.csv -fd 1 ${SIPP_ARGS--buff_size 4194304} >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    c1=$(cpu_of "$server_pid")
    python3 - "$work/s.csv" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';')); h = rows[0]; last = rows[-1]
ok = int(last[h.index("SuccessfulCall(C)")]); bad = int(last[h.index("FailedCall(C)")])
rt = int(last[h.index("Retransmissions(C)")])
wall = float(sys.argv[3]) - float(sys.argv[2])
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / float(sys.argv[6])
try:
    su, ss = map(float, open(sys.argv[1].replace("s.csv", "sipp.time")).read().split()[-2:])
except Exception:
    su = ss = 0.0
print("%.0f %d %d %.2f %.2f" % (ok / wall, bad, rt, cpu, su + ss))
PY
}

printf '%-8s | %-41s | %-41s\n' "offered" "kamailio: achieved/s fail retr cpu sipp" "cascade: achieved/s fail retr cpu sipp"
best_k=0 best_c=0 ok_k=1 ok_c=1
servers=${SERVERS:-kamailio cascade}
for rate in $rates; do
    ka=0 kf=- kr=- kc=- ks=- ca=0 cf=- cr=- cc=- cs=-
    case " $servers " in *" kamailio "*)
        start_kamailio
        read -r ka kf kr kc ks < <(run_step "$kport" "$rate")
        stop_server;;
    esac
    case " $servers " in *" cascade "*)
        start_cascade
        read -r ca cf cr cc cs < <(run_step "$cport" "$rate")
        stop_server;;
    esac
    printf '%-8s | %8s %6s %6s %6ss %6ss      | %8s %6s %6s %6ss %6ss\n' "$rate" "$ka" "$kf" "$kr" "$kc" "$ks" "$ca" "$cf" "$cr" "$cc" "$cs"
    # Best = the highest rate achieved by a step with 0 failures, up to the
    # first step that failed (a server that collapses without failing calls,
    # i.e. it only fell behind, does not lower what it achieved before).
    if [ "$ok_k" = 1 ] && [ "$kf" = 0 ]; then [ "$ka" -gt "$best_k" ] && best_k=$ka; else ok_k=0; fi
    if [ "$ok_c" = 1 ] && [ "$cf" = 0 ]; then [ "$ca" -gt "$best_c" ] && best_c=$ca; else ok_c=0; fi
done
echo "RESULT kamailio: $best_k REGISTER/s with 0 failures"
echo "RESULT cascade:  $best_c REGISTER/s with 0 failures"
python3 -c "import sys; k, c = float(sys.argv[1]), float(sys.argv[2]); print('RESULT ratio cascade/kamailio: %.2f' % (c / k if k else 0))" "$best_k" "$best_c"
