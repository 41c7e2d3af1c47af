#!/usr/bin/env bash
# Devices held online by the GB upper role: cascade-gbsim registers N devices
# (digest, default password, allow_unknown) and keeps them alive every 60 s;
# we read cascade's RSS before and after, its CPU share over a steady window
# of W seconds, and the online count from /api/v1/stats at the end (any false
# offline shows as online < N).
# Usage: bench/gb-devices-held.sh [BUILD_DIR]   (env: DEVICES=100000 RATE=3000 WINDOW=60)
# Not a test: the registration storm loads both cores for N/RATE seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-$root/build}
n=${DEVICES:-100000}; rate=${RATE:-3000}; window=${WINDOW:-60}
work=$(mktemp -d /tmp/cascade-bench.XXXXXX)
port=${PORT:-37060}; api=${API_PORT:-37080}
cascade_gbsim_ini "$port" "$api" 60 "${CATALOG:-no}" warn
start_cascade_ini
pid=$server_pid
sim=
trap 'kill_and_remove_work "$pid" "${sim:-}"' EXIT
sleep 1
rss() { proc_rss_kib "$pid"; }
cpu() { proc_cpu_ticks "$pid"; }
online() { curl -s -H 'Authorization: Bearer t' "http://127.0.0.1:$api/api/v1/stats" | jq -r '.gb_upper.online'; }
r0=$(rss)
t0=$(date +%s)
"$build/cascade-gbsim" --target 127.0.0.1:$port --devices "$n" --rate "$rate" --sockets 16 --keepalive 60 \
    --expires 3600 --quiet --duration $((n / rate + window + 90)) >"$work/sim.log" 2>&1 &
sim=$!
until [ "$(online)" -ge "$n" ] 2>/dev/null; do
    sleep 1
    if [ $(($(date +%s) - t0)) -gt $((n / rate * 4 + 60)) ]; then echo "only $(online) of $n online"; exit 1; fi
done
t1=$(date +%s)
echo "$n devices online after $((t1 - t0)) s (rate $rate/s)"
sleep 20   # let the registration burst settle (store writes, first keepalives)
r1=$(rss); c0=$(cpu)
sleep "$window"
c1=$(cpu); r2=$(rss); on=$(online)
echo "steady window ${window}s: cascade CPU $(cpu_percent "$c0" "$c1" "$window" 2)% of one core"
echo "RSS: $r0 KiB empty -> $r2 KiB with $n devices: $(echo "scale=0; ($r2 - $r0) * 1024 / $n" | bc) bytes per device"
echo "online at the end: $on of $n (false offlines: $((n - on)))"
# Where the RSS goes: the heap actually in use (glibc malloc_stats) versus
# freed memory the allocator keeps from the registration burst (malloc_trim).
if command -v gdb >/dev/null && [ -z "${NO_GDB:-}" ]; then
    gdb -p "$pid" -batch -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    inuse=$(grep -a "in use bytes" "$work/cascade.log" | tail -1 | awk '{print $NF}')
    echo "heap in use: $((inuse / 1024)) KiB ($(echo "scale=0; $inuse / $n" | bc) bytes per device, all modules);" \
         "RSS after malloc_trim: $(rss) KiB"
fi
if [ -n "${SMAPS:-}" ]; then
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name=$6; if (name=="") name="[anon]"} /^Rss:/ {rss[name]+=$2} END {for (k in rss) if (rss[k] > 1024) print rss[k], k}' \
        "/proc/$pid/smaps" | sort -rn | head -12
fi
