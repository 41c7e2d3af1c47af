#!/usr/bin/env bash
# Proxied calls/s (INVITE/180/200/ACK/BYE/200 through a record-routing
# stateful proxy), cascade vs Kamailio, in one run on this machine.
#
# Usage: bench/proxy-sweep.sh [BUILD_DIR]
#   RATES="500 1000 ..."    offered call rates
#   SECS=10                 seconds per step
#   SHARED=../shared/bench  where kamailio-proxy.cfg lives
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
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-500 1000 1500 2000 2500 3000 4000}
secs=${SECS:-10}
work=$(mktemp -d /tmp/cascade-proxybench.XXXXXX)
kport=5071            # fixed by kamailio-proxy.cfg
uport=5092            # the UAS, fixed by kamailio-proxy.cfg
server_pid=
uas_pid=

cleanup() {
    [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    sleep 0.3
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
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

start_uas() {
    (cd "$work" && exec sipp -sf "$root/bench/sipp/proxy-uas.xml" -s uas -i 127.0.0.1 -p "$uport" -nostdin \
        >"$work/uas.out" 2>&1) &
    uas_pid=$!
    sleep 0.3
}

stop_all() {
    kill "$uas_pid" 2>/dev/null || true
    wait "$uas_pid" 2>/dev/null || true
    uas_pid=
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

start_kamailio() {
    kamailio -f "$shared/kamailio-proxy.cfg" -DD -E -w "$work" -m 1024 -M 32 >"$work/kamailio.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        ss -Hunl "sport = :$kport" | grep -q . && { start_uas; return 0; }
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
[api]
listen = 127.0.0.1:$aport
token = bench
[store]
path = $work/c.db
[log]
level = warn
INI
    "$build/cascade" -c "$work/c.ini" >"$work/cascade.log" 2>&1 &
    server_pid=$!
    local up=0
    for _ in $(seq 1 50); do
        if curl -sf -X POST -H 'Authorization: Bearer bench' -d '{"name":"uas","password":"secret"}' \
            "http://127.0.0.1:$aport/api/v1/users" >/dev/null 2>&1; then up=1; break; fi
        sleep 0.1
    done
    [ "$up" = 1 ] || { echo "cascade did not start"; cat "$work/cascade.log"; exit 1; }
    (cd "$work" && sipp "127.0.0.1:$cport" -sf "$root/tests/peers/sipp/register.xml" -s uas -au uas -ap secret \
        -key expires 3600 -key cport "$uport" -i 127.0.0.1 -p "$uport" -m 1 -nostdin >/dev/null 2>&1) ||
        { echo "uas could not register with cascade"; exit 1; }
    start_uas
}

# run_step PORT RATE -> "achieved failed retrans cpu_s"
run_step() {
    local port=$1 rate=$2 t0 t1 c0 c1
    rm -f "$work/s.csv"
    c0=$(cpu_of "$server_pid")
    t0=$(date +%s.%N)
    (cd "$work" && timeout $((secs + 60)) sipp "127.0.0.1:$port" -sf "$root/bench/sipp/proxy-uac.xml" -s uas \
        -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -default_behaviors all,-abortunexp -nostdin -trace_stat -stf s.csv -fd 1 >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    c1=$(cpu_of "$server_pid")
    python3 - "$work/s.csv" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';')); h = rows[0]; last = rows[-1]
ok = int(last[h.index("SuccessfulCall(C)")]); bad = int(last[h.index("FailedCall(C)")])
rt = int(last[h.index("Retransmissions(C)")])
wall = float(sys.argv[3]) - float(sys.argv[2])
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / float(sys.argv[6])
print("%.0f %d %d %.2f" % (ok / wall, bad, rt, cpu))
PY
}

printf '%-8s | %-34s | %-34s\n' "offered" "kamailio: calls/s fail retr cpu" "cascade: calls/s fail retr cpu"
best_k=0 best_c=0 ok_k=1 ok_c=1
for rate in $rates; do
    start_kamailio
    read -r ka kf kr kc < <(run_step "$kport" "$rate")
    stop_all
    start_cascade
    read -r ca cf cr cc < <(run_step "$cport" "$rate")
    stop_all
    printf '%-8s | %8s %6s %6s %6ss      | %8s %6s %6s %6ss\n' "$rate" "$ka" "$kf" "$kr" "$kc" "$ca" "$cf" "$cr" "$cc"
    if [ "$ok_k" = 1 ] && [ "$kf" = 0 ]; then best_k=$ka; else ok_k=0; fi
    if [ "$ok_c" = 1 ] && [ "$cf" = 0 ]; then best_c=$ca; else ok_c=0; fi
done
echo "RESULT kamailio: $best_k calls/s with 0 failures"
echo "RESULT cascade:  $best_c calls/s with 0 failures"
python3 -c "import sys; k, c = float(sys.argv[1]), float(sys.argv[2]); print('RESULT ratio cascade/kamailio: %.2f' % (c / k if k else 0))" "$best_k" "$best_c"
