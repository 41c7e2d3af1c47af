#!/usr/bin/env bash
# Authenticated REGISTER on 1, 2 and 3 cascade nodes sharing a Redis Cluster
# (issue 16, "Benchmark": REGISTER/s at 0 failures and CPU per registration,
# with Redis vs SQLite).
#
# Usage: bench/cluster-register.sh [BUILD_DIR]
#   NODES="1 2 3"        node counts, one sweep each
#   RATES="3000 6000 12000 18000"  total offered rates (split evenly over the
#                        nodes, one sipp per node, each with its own AoRs)
#   SECS=10              seconds per step
#   REDIS=yes            yes: every node mirrors its bindings into the cluster
#                        and routes between nodes ([redis] mirror_bindings,
#                        cluster_route); no: the same nodes on SQLite alone
#   MASTERS=3            Redis Cluster masters (no replicas)
#   SERVER_CPUS=0 LOAD_CPUS=1  taskset lists: the cascade nodes (all of them)
#                        and Redis on SERVER_CPUS, the sipps on LOAD_CPUS;
#                        empty: anywhere
#   KEEP_WORK=1          keep the work dir
#
# Each node: cascade with SQLite in its own directory, [auth] match_user = no,
# the digest user bench/secret added through its API, node id nK. One fresh
# set of nodes and a flushed cluster per step. Printed per step: achieved
# registrations/s summed over the nodes, failed calls, retransmissions, the
# nodes' CPU-s per 10 000 registrations (summed over nodes), Redis's, and the
# keys in the cluster at the end; per node count, the highest step with 0
# failures. On this 2-core machine the nodes share one core (they cannot
# scale out here): the figure is what the cluster's bookkeeping costs, not
# how it scales; docs/architecture.md has the figure on paper for more cores.
# Not a test: it loads both cores for NODES x RATES x SECS seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
node_counts=${NODES:-1 2 3}
rates=${RATES:-3000 6000 12000 18000}
secs=${SECS:-10}
use_redis=${REDIS:-yes}
masters=${MASTERS:-3}
scpu=${SERVER_CPUS-0}
lcpu=${LOAD_CPUS-1}
work=$(mktemp -d /tmp/cascade-clreg.XXXXXX)
node_pids=()

# exec: run in the background, $! is then the program itself.
on_cpus() { if [ -n "$1" ]; then shift; exec taskset -c "$scpu" "$@"; else shift; exec "$@"; fi; }
load=()
[ -n "$lcpu" ] && load=(taskset -c "$lcpu")

stop_nodes() {
    local p
    for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    node_pids=()
}
cleanup() {
    stop_nodes
    local p
    for p in "${redis_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "work dir: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

start_cluster() { redis_start "cluster:$masters" "$scpu"; }

flush_cluster() {
    local p
    for p in "${redis_ports[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
}

cluster_keys() {
    local p n=0
    for p in "${redis_ports[@]}"; do n=$((n + $(redis-cli -p "$p" dbsize))); done
    echo "$n"
}

# start_node K: node K on fresh ports; sets NODE_SIP[K], NODE_API[K].
declare -A NODE_SIP NODE_API
start_node() {
    local k=$1 sip api d="$work/n$1"
    sip=$(free_port); api=$(free_port)
    NODE_SIP[$k]=$sip; NODE_API[$k]=$api
    rm -rf "$d"; mkdir -p "$d"
    {
        printf '[sip]\nlisten = udp:127.0.0.1:%s\ndomain = 127.0.0.1\n' "$sip"
        printf '[auth]\nrealm = 127.0.0.1\nmatch_user = no\n[registrar]\nmax_expires = 3600\n'
        printf '[api]\nlisten = 127.0.0.1:%s\ntoken = bench\n' "$api"
        printf '[store]\npath = %s/c.db\n[log]\nlevel = warn\n' "$d"
        if [ "$use_redis" = yes ]; then
            printf '[redis]\nnodes = %s\nnode_id = n%s\nmirror_bindings = yes\ncluster_route = yes\n' \
                "$(printf '127.0.0.1:%s,' "${redis_ports[@]}" | sed 's/,$//')" "$k"
        fi
    } >"$d/c.ini"
    on_cpus "$scpu" "$build/cascade" -c "$d/c.ini" >"$d/cascade.log" 2>&1 &
    node_pids+=("$!")
    cascade_add_user "$api" bench || { echo "node $k did not start"; cat "$d/cascade.log"; exit 1; }
}

# users_csv K N: AoRs nK-0 .. nK-(N-1), so that nodes never share an AoR.
users_csv() {
    { echo SEQUENTIAL; for i in $(seq 0 $(($2 - 1))); do echo "n$1u$i;secret"; done; } >"$work/users$1.csv"
}

[ "$use_redis" = yes ] && start_cluster
hz=$(getconf CLK_TCK)
printf '%-5s %-8s | %10s %6s %6s | %-10s %-10s %-9s | %s\n' nodes offered "achieved/s" fail retr "nodes cpu" "redis cpu" "sum" "keys (CPU-s per 10 000 registrations)"
for n in $node_counts; do
    best=0
    for rate in $rates; do
        per=$((rate / n))
        [ "$use_redis" = yes ] && flush_cluster
        for k in $(seq 1 "$n"); do
            start_node "$k"
            users_csv "$k" $((per * secs))
        done
        sleep 1.5 # heartbeats: each node sees the others
        c0=$(cpu_sum "${node_pids[@]}"); r0=0
        [ "$use_redis" = yes ] && r0=$(cpu_sum "${redis_pids[@]}")
        t0=$(date +%s.%N)
        spids=()
        for k in $(seq 1 "$n"); do
            (cd "$work" && timeout $((secs + 60)) "${load[@]}" sipp "127.0.0.1:${NODE_SIP[$k]}" -sf "$shared/register-auth.xml" \
                -inf "users$k.csv" -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$per" -m $((per * secs)) \
                -l $((per * 3)) -nostdin -trace_stat -stf "s$k.csv" -fd 1 -buff_size 4194304 >/dev/null 2>&1) &
            spids+=("$!")
        done
        for p in "${spids[@]}"; do wait "$p" || true; done
        t1=$(date +%s.%N)
        c1=$(cpu_sum "${node_pids[@]}"); r1=0
        [ "$use_redis" = yes ] && r1=$(cpu_sum "${redis_pids[@]}")
        keys=-; [ "$use_redis" = yes ] && keys=$(cluster_keys)
        ok=0; bad=0; rt=0
        for k in $(seq 1 "$n"); do
            read -r o b r < <(sipp_csv_counts "$work/s$k.csv")
            ok=$((ok + o)); bad=$((bad + b)); rt=$((rt + r))
        done
        stop_nodes
        read -r ach nodes_k redis_k sum_k < <(python3 -c '
import sys
ok, t0, t1, c0, c1, r0, r1, hz = map(float, sys.argv[1:])
k = 10000.0 / ok if ok else 0
print("%.0f %.3f %.3f %.3f" % (ok / (t1 - t0), (c1 - c0) / hz * k, (r1 - r0) / hz * k, ((c1 - c0) + (r1 - r0)) / hz * k))' \
            "$ok" "$t0" "$t1" "$c0" "$c1" "$r0" "$r1" "$hz")
        printf '%-5s %-8s | %10s %6s %6s | %-10s %-10s %-9s | %s\n' "$n" "$rate" "$ach" "$bad" "$rt" "$nodes_k" "$redis_k" "$sum_k" "$keys"
        [ "$bad" -eq 0 ] && [ "$ach" -gt "$best" ] && best=$ach
    done
    echo "nodes $n: highest achieved/s with 0 failures $best (redis: $use_redis)"
done
