#!/usr/bin/env bash
# The cost of routing a call between nodes (issue 16): proxied calls
# (INVITE/180/200/ACK/BYE/200, bench/sipp/proxy-uac.xml and proxy-uas.xml) to a
# UAS registered on node A, sent either to A itself ("local") or to node C,
# which finds the UAS's binding through the cluster and forwards the call to
# A with the peer mark ("cross": two proxies record-route every request).
#
# Usage: bench/cluster-call.sh [BUILD_DIR]
#   RATES="500 1000 2000"  offered calls/s
#   SECS=10                seconds per step
#   MASTERS=3              Redis Cluster masters (no replicas)
#   SERVER_CPUS=0 LOAD_CPUS=1  taskset lists: both nodes and Redis, the sipps;
#                          empty: anywhere
#   KEEP_WORK=1            keep the work dir
#
# Both nodes run in both modes (cascade as registrar + proxy, [proxy]
# authenticate = no and pike_limit = 0 as in bench/proxy-sweep.sh, SQLite in
# its own directory, [redis] mirror_bindings and cluster_route on, lookups
# cached 10 s); fresh nodes and a flushed cluster per step; the UAS registers
# on A (digest) before each step. Printed per step and mode: achieved calls/s,
# failed calls, retransmissions, CPU-s per 1 000 calls of node A, node C,
# Redis and their sum; then per rate the cross/local ratio of the sums. C's
# first lookup of the UAS is one HGETALL; later ones come from its cache.
# Not a test: it loads both cores for 2 x RATES x SECS seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
rates=${RATES:-500 1000 2000}
secs=${SECS:-10}
masters=${MASTERS:-3}
scpu=${SERVER_CPUS-0}
lcpu=${LOAD_CPUS-1}
work=$(mktemp -d /tmp/cascade-clcall.XXXXXX)
node_pids=()
uas_pid=

on_cpus() { if [ -n "$1" ]; then shift; exec taskset -c "$scpu" "$@"; else shift; exec "$@"; fi; }
load=()
[ -n "$lcpu" ] && load=(taskset -c "$lcpu")

stop_all() {
    local p
    [ -n "$uas_pid" ] && { kill "$uas_pid" 2>/dev/null || true; wait "$uas_pid" 2>/dev/null || true; }
    uas_pid=
    for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    node_pids=()
}
cleanup() {
    stop_all
    local p
    for p in "${redis_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work dir: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

redis_start "cluster:$masters" "$scpu"
seeds=$(printf '127.0.0.1:%s,' "${redis_ports[@]}" | sed 's/,$//')

# start_node NAME: a node on fresh ports; sets SIP[NAME], API[NAME], PID[NAME].
declare -A SIP API PID
start_node() {
    local n=$1 d="$work/$1"
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    rm -rf "$d"; mkdir -p "$d"
    cat >"$d/c.ini" <<INI
[sip]
listen = udp:127.0.0.1:${SIP[$n]}
domain = 127.0.0.1
[auth]
realm = 127.0.0.1
[proxy]
authenticate = no
pike_limit = 0
[api]
listen = 127.0.0.1:${API[$n]}
token = bench
[store]
path = $d/c.db
[log]
level = warn
[redis]
nodes = $seeds
node_id = node-$n
mirror_bindings = yes
cluster_route = yes
lookup_cache_ms = 10000
heartbeat_ms = 300
INI
    on_cpus "$scpu" "$build/cascade" -c "$d/c.ini" >"$d/cascade.log" 2>&1 &
    PID[$n]=$!
    node_pids+=("$!")
}

# step MODE RATE: prints "achieved failed retrans cpuA cpuC cpuRedis sum" (CPU-s per 1 000 calls).
step() {
    local mode=$1 rate=$2 uport target a0 c0 r0 a1 c1 r1 t0 t1 ok bad rt
    for p in "${redis_ports[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
    start_node a
    start_node c
    cascade_add_user "${API[a]}" uas || { echo "node a did not start" >&2; exit 1; }
    cascade_add_user "${API[c]}" uas || { echo "node c did not start" >&2; exit 1; }
    uport=$(free_port)
    (cd "$work" && sipp "127.0.0.1:${SIP[a]}" -sf "$root/tests/peers/sipp/register.xml" -s uas -au uas -ap secret \
        -key expires 3600 -key cport "$uport" -i 127.0.0.1 -p "$uport" -m 1 -nostdin >/dev/null 2>&1) ||
        { echo "uas could not register on node a" >&2; exit 1; }
    (cd "$work" && exec "${load[@]}" sipp -sf "$root/bench/sipp/proxy-uas.xml" -s uas -i 127.0.0.1 -p "$uport" \
        -nostdin -buff_size 4194304 >"$work/uas.out" 2>&1) &
    uas_pid=$!
    sleep 1.5 # heartbeats: C sees A; the binding is mirrored
    target=${SIP[a]}
    [ "$mode" = cross ] && target=${SIP[c]}
    rm -f "$work/s.csv"
    a0=$(cpu_sum "${PID[a]}"); c0=$(cpu_sum "${PID[c]}"); r0=$(cpu_sum "${redis_pids[@]}")
    t0=$(date +%s.%N)
    (cd "$work" && timeout $((secs + 60)) "${load[@]}" sipp "127.0.0.1:$target" -sf "$root/bench/sipp/proxy-uac.xml" \
        -s uas -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -default_behaviors all,-abortunexp -nostdin -trace_stat -stf s.csv -fd 1 -buff_size 4194304 >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    a1=$(cpu_sum "${PID[a]}"); c1=$(cpu_sum "${PID[c]}"); r1=$(cpu_sum "${redis_pids[@]}")
    read -r ok bad rt < <(sipp_csv_counts "$work/s.csv")
    stop_all
    python3 -c '
import sys
ok, bad, rt, t0, t1, a0, a1, c0, c1, r0, r1, hz = map(float, sys.argv[1:])
k = 1000.0 / ok if ok else 0
a, c, r = (a1 - a0) / hz * k, (c1 - c0) / hz * k, (r1 - r0) / hz * k
print("%.0f %d %d %.3f %.3f %.3f %.3f" % (ok / (t1 - t0), bad, rt, a, c, r, a + c + r))' \
        "$ok" "$bad" "$rt" "$t0" "$t1" "$a0" "$a1" "$c0" "$c1" "$r0" "$r1" "$(getconf CLK_TCK)"
}

printf '%-6s %-7s | %8s %6s %6s | %-8s %-8s %-8s %-8s\n' mode offered "calls/s" fail retr "A" "C" "redis" "sum  (CPU-s per 1 000 calls)"
for rate in $rates; do
    declare -A sum
    for mode in local cross; do
        read -r ach bad rt a c r s < <(step "$mode" "$rate")
        printf '%-6s %-7s | %8s %6s %6s | %-8s %-8s %-8s %-8s\n' "$mode" "$rate" "$ach" "$bad" "$rt" "$a" "$c" "$r" "$s"
        sum[$mode]=$s
    done
    python3 -c 'import sys; l, x = map(float, sys.argv[2:]); print("ratio  %-7s | a call through two nodes costs %.2f x a call through one (CPU, nodes + Redis)" % (sys.argv[1], x / l if l else 0))' \
        "$rate" "${sum[local]}" "${sum[cross]}"
done
