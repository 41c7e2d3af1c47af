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
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-2000 4000 6000 8000 10000 12000 15000}
secs=${SECS:-10}
work=$(mktemp -d /tmp/cascade-regbench.XXXXXX)
kport=5070            # fixed by kamailio-registrar.cfg
server_pid=
server_cpus=${SERVER_CPUS:-}
sipp_cpus=${SIPP_CPUS:-}
quota=${SERVER_QUOTA:-}
if [ -n "$quota" ]; then
    server_cgroup=/sys/fs/cgroup/cpu/cascade-bench.$$
    mkdir "$server_cgroup"
    echo 10000 >"$server_cgroup/cpu.cfs_period_us"
    echo $((quota * 100)) >"$server_cgroup/cpu.cfs_quota_us"
fi
sipp_pre=()
[ -n "$sipp_cpus" ] && sipp_pre=(taskset -c "$sipp_cpus")

cleanup() {
    kill_server_and_clean
    [ -n "$server_cgroup" ] && rmdir "$server_cgroup" 2>/dev/null || true
}
trap cleanup EXIT

write_users_csv "$(max_step_calls "$rates" "$secs")"

start_kamailio() { start_kamailio_cfg kamailio-registrar.cfg 512 "$kport"; }

# run_step PORT RATE -> "achieved failed retrans cpu_s"
run_step() {
    local port=$1 rate=$2 t0 t1 c0 c1 figures
    rm -f "$work/s.csv" "$work/sipp.time"
    c0=$(tree_cpu_ticks "$server_pid")
    t0=$(date +%s.%N)
    (cd "$work" && /usr/bin/time -f "%U %S" -o sipp.time timeout $((secs + 60)) "${sipp_pre[@]}" sipp "127.0.0.1:$port" -sf "$shared/register-auth.xml" -inf users.csv \
        -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -nostdin -trace_stat -stf s.csv -fd 1 ${SIPP_ARGS--buff_size 4194304} >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    c1=$(tree_cpu_ticks "$server_pid")
    figures=$(sipp_step_figures "$work/s.csv" "$t0" "$t1" "$c0" "$c1") || return 1
    python3 - "$figures" "$work/sipp.time" <<'PY'
import sys
try:
    su, ss = map(float, open(sys.argv[2]).read().split()[-2:])
except Exception:
    su = ss = 0.0
print("%s %.2f" % (sys.argv[1], su + ss))
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
        start_fresh_cascade cascade_registrar_ini bench
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
print_ratio "$best_k" "$best_c"
