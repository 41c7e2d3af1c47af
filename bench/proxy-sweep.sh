#!/usr/bin/env bash
# Proxied calls/s (INVITE/180/200/ACK/BYE/200 through a record-routing
# stateful proxy), cascade vs Kamailio, in one run on this machine.
#
# Usage: bench/proxy-sweep.sh [BUILD_DIR]
#   RATES="500 1000 ..."    offered call rates
#   SECS=10                 seconds per step
#   SHARED=../shared/bench  where kamailio-proxy.cfg lives
#   SERVERS="kamailio cascade"  which proxies to run (default both)
#   SERVER_CPUS=1           pin the proxy (every process and thread) to these CPUs
#   SIPP_CPUS=0             pin both sipps (UAC and UAS) to these CPUs
#   SIPP_ARGS="-buff_size 4194304"  extra options for both sipps (default: 4 MiB
#                           socket buffers, so that sipp does not drop on its own socket)
#
# Kamailio runs ../shared/bench/kamailio-proxy.cfg (2 children, record_route,
# t_relay to a sipp UAS on 127.0.0.1:5092, no location lookup). cascade runs
# as registrar + proxy: the UAS registers "uas" (digest) from 127.0.0.1:5092
# and each INVITE goes through a location lookup. Both get the same sipp
# scenarios (bench/sipp/proxy-uac.xml, proxy-uas.xml: ACK and BYE follow the
# Record-Route set). sipp does not abort a call on an unexpected message
# (a 180 overtaken by the 200: Kamailio's worker processes reorder them on
# UDP, which RFC 3261 allows). One step at a time; sipp UAC, sipp UAS and the proxy
# share the 2 cores, so the figures are a lower bound for both. Not a test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-500 1000 1500 2000 2500 3000 4000}
secs=${SECS:-10}
work=$(mktemp -d /tmp/cascade-proxybench.XXXXXX)
kport=5071            # fixed by kamailio-proxy.cfg
uport=5092            # the UAS, fixed by kamailio-proxy.cfg
server_pid=
uas_pid=
server_cpus=${SERVER_CPUS:-}
sipp_pre=()
[ -n "${SIPP_CPUS:-}" ] && sipp_pre=(taskset -c "$SIPP_CPUS")
sipp_args=${SIPP_ARGS--buff_size 4194304}

cleanup() {
    [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null || true
    kill_server_and_clean
}
trap cleanup EXIT

start_uas() {
    # shellcheck disable=SC2086 # sipp_args is a list of options
    (cd "$work" && exec "${sipp_pre[@]}" sipp -sf "$root/bench/sipp/proxy-uas.xml" -s uas -i 127.0.0.1 -p "$uport" \
        -nostdin $sipp_args >"$work/uas.out" 2>&1) &
    uas_pid=$!
    sleep 0.3
}

stop_all() {
    kill "$uas_pid" 2>/dev/null || true
    wait "$uas_pid" 2>/dev/null || true
    uas_pid=
    stop_server
}

start_kamailio() {
    start_kamailio_cfg kamailio-proxy.cfg 1024 "$kport"
    start_uas
}

# proxy_ini PORT API_PORT: cascade as registrar + proxy, digest realm 127.0.0.1.
# The callers are not challenged ([proxy] authenticate = no), like Kamailio's
# anchor configuration, which authenticates nobody.
# pike_limit = 0: the whole offered load comes from one source (sipp).
proxy_ini() {
    cascade_write_ini "udp:127.0.0.1:$1" "127.0.0.1:$2" bench warn <<INI
domain = 127.0.0.1
[auth]
realm = 127.0.0.1
[proxy]
authenticate = no
pike_limit = 0
INI
}

start_cascade() {
    start_fresh_cascade proxy_ini uas
    (cd "$work" && sipp "127.0.0.1:$cport" -sf "$root/tests/peers/sipp/register.xml" -s uas -au uas -ap secret \
        -key expires 3600 -key cport "$uport" -i 127.0.0.1 -p "$uport" -m 1 -nostdin >/dev/null 2>&1) ||
        { echo "uas could not register with cascade"; exit 1; }
    start_uas
}

# run_step PORT RATE -> "achieved failed retrans cpu_s"
run_step() {
    local port=$1 rate=$2 t0 t1 c0 c1
    rm -f "$work/s.csv"
    c0=$(tree_cpu_ticks "$server_pid")
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # sipp_args is a list of options
    (cd "$work" && timeout $((secs + 60)) "${sipp_pre[@]}" sipp "127.0.0.1:$port" -sf "$root/bench/sipp/proxy-uac.xml" \
        -s uas -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -default_behaviors all,-abortunexp -nostdin -trace_stat -stf s.csv -fd 1 $sipp_args >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    c1=$(tree_cpu_ticks "$server_pid")
    sipp_step_figures "$work/s.csv" "$t0" "$t1" "$c0" "$c1"
}

printf '%-8s | %-34s | %-34s\n' "offered" "kamailio: calls/s fail retr cpu" "cascade: calls/s fail retr cpu"
best_k=0 best_c=0 ok_k=1 ok_c=1
servers=${SERVERS:-kamailio cascade}
for rate in $rates; do
    ka=0 kf=- kr=- kc=- ca=0 cf=- cr=- cc=-
    case " $servers " in *" kamailio "*)
        start_kamailio
        read -r ka kf kr kc < <(run_step "$kport" "$rate")
        stop_all;;
    esac
    case " $servers " in *" cascade "*)
        start_cascade
        read -r ca cf cr cc < <(run_step "$cport" "$rate")
        stop_all;;
    esac
    printf '%-8s | %8s %6s %6s %6ss      | %8s %6s %6s %6ss\n' "$rate" "$ka" "$kf" "$kr" "$kc" "$ca" "$cf" "$cr" "$cc"
    if [ "$ok_k" = 1 ] && [ "$kf" = 0 ]; then best_k=$ka; else ok_k=0; fi
    if [ "$ok_c" = 1 ] && [ "$cf" = 0 ]; then best_c=$ca; else ok_c=0; fi
done
echo "RESULT kamailio: $best_k calls/s with 0 failures"
echo "RESULT cascade:  $best_c calls/s with 0 failures"
print_ratio "$best_k" "$best_c"
